-- Follow-through (issue 5). The scheduler finds orders by index, not by reading every order: those whose client
-- update is due (the first day of the last client-update period queued; the creation day before any) and those
-- dunning may concern (the earliest due date of an unpaid installment). The outbox keeps the last error of a
-- message and when it was sent; 'draft' messages wait for a person, 'failed' ones are the dead letters.
ALTER TABLE orders ADD COLUMN client_update_on DATE;
ALTER TABLE orders ADD COLUMN unpaid_due_on DATE;
CREATE INDEX orders_unpaid_due ON orders (unpaid_due_on) WHERE unpaid_due_on IS NOT NULL;
CREATE INDEX orders_client_update ON orders (order_type, client_update_on) WHERE awaits_delivery;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN finished_at TIMESTAMPTZ;
CREATE INDEX outbox_state ON outbox (state, position);
-- How far the scheduler got with an open milestone at its planned date (0 nothing, 1 chase, 2 reminder, 3
-- overdue notice queued): it asks only about milestones with a step still to come.
ALTER TABLE milestones ADD COLUMN follow_through_stage BIGINT NOT NULL DEFAULT 0;
