-- Follow-through (issue 5). The scheduler finds orders whose client update is due by index: the first day of
-- the last client-update period queued (the creation day before any). The outbox keeps the last error of a
-- message and when it was sent; 'draft' messages wait for a person, 'failed' ones are the dead letters.
ALTER TABLE orders ADD COLUMN client_update_on DATE;
CREATE INDEX orders_client_update ON orders (order_type, client_update_on) WHERE awaits_delivery;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN finished_at TIMESTAMPTZ;
CREATE INDEX outbox_state ON outbox (state, position);
