-- One transition's writes as a bare pgbench transaction (`ordertrail bench --database-url postgres://...` runs
-- `pgbench -n -M prepared -f bench/pg_bare.sql -c 64 -j 2 -T 10` on the tables of pg_bare_setup.sql):
-- update the order's row (a new ~4 KB body, a new status, the next version), append the event (~300 B of
-- payload) at that version, enqueue the outbox row. Each client walks its own 100 orders, as the HTTP bench's
-- workers do, so no two clients wait for the same row lock.
\set n 1 + :client_id * 100 + random(0, 99)
\set v random(1, 999999999)
BEGIN;
UPDATE bare_orders SET status = 's' || :v, version = version + 1, body = overlay(body placing lpad(:v::text, 12, '0') from 8 for 12), head_hash = md5(:v::text) || md5(:n::text), updated_at = now() WHERE id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid RETURNING version \gset
INSERT INTO bare_events (id, stream_id, seq, occurred_at, actor_id, acting_role, kind, reason, payload, prev_hash, hash) VALUES (gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, :version::bigint, now(), '00000000-0000-4000-8000-000000000001', 'logistics', 'status_changed', NULL, '{"type":"status_changed","from":"in_production","to":"shipped","fields":{"carrier":"UPS","tracking_number":"1Z999AA10123456784"},"completed":["shipment"],"note": null,"expected_version": null,"at":"' || now() || '","actor":{"user":"00000000-0000-4000-8000-000000000001","role":"logistics"},"nonce":"' || md5(:v::text) || md5(:n::text) || '"}', md5(:n::text) || md5(:v::text), md5(:v::text) || md5(:n::text));
INSERT INTO bare_outbox (id, stream_id, event_id, kind, dedupe_key, payload, due_at, state, attempts, created_at) VALUES (gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, gen_random_uuid(), 'webhook.order_event', 'order_event:' || gen_random_uuid(), '{"type":"status_changed","from":"in_production","to":"shipped","fields":{"carrier":"UPS","tracking_number":"1Z999AA10123456784"},"completed":["shipment"],"note": null,"expected_version": null,"at":"' || now() || '","actor":{"user":"00000000-0000-4000-8000-000000000001","role":"logistics"},"nonce":"' || md5(:n::text) || md5(:v::text) || '"}', now(), 'pending', 0, now());
END;
