-- Background work is claimed before it is done: a claim names its worker and lasts until `claimed_until`;
-- a claim that ran out (its worker died) may be taken again. See `Store::claim_outbox`.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
CREATE INDEX outbox_claimable ON outbox (due_at) WHERE state IN ('pending', 'claimed');
