-- Ordertrail foundation schema (SQLite). Times are TEXT in RFC 3339 UTC with microseconds
-- ("2026-11-21T20:00:00.123456Z"), dates are TEXT "YYYY-MM-DD", ids are hyphenated UUID text.
-- Every time is bound from Rust; no SQL default writes a time (their format differs and breaks comparisons).
-- Tables of small rows keyed by text are WITHOUT ROWID: one B-tree per row instead of a table and its key index.

-- The audit log: append-only, one hash chain per stream (an order, a customer, the organisation).
CREATE TABLE events (
    -- The event's place in the whole log (also the row's key); `id` is its name for the outside world.
    position    INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    actor_id    TEXT,
    acting_role TEXT NOT NULL,
    kind        TEXT NOT NULL,
    reason      TEXT,
    payload     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    UNIQUE (stream_id, seq)
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,
    customer_id TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    head_hash   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- One row per order: the whole record as JSON in `body` (what reads load), plus the columns that lists and
-- rules filter on, kept up to date in the same transaction as the events.
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    workflow        TEXT NOT NULL,
    status          TEXT NOT NULL,
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    owner_id        TEXT,
    order_type      TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    order_date      TEXT NOT NULL,
    promised_date   TEXT NOT NULL,
    awaits_delivery INTEGER NOT NULL,
    next_due_on     TEXT,
    last_planned_on TEXT,
    open_exceptions INTEGER NOT NULL,
    search_text     TEXT NOT NULL,
    body            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    head_hash       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_owner ON orders (owner_id, id);
CREATE INDEX orders_next_due ON orders (next_due_on) WHERE awaits_delivery = 1;

CREATE TABLE order_people (
    order_id TEXT NOT NULL REFERENCES orders (id),
    user_id  TEXT NOT NULL,
    relation TEXT NOT NULL,
    PRIMARY KEY (order_id, user_id, relation)
) WITHOUT ROWID;
CREATE INDEX order_people_user ON order_people (user_id, order_id);

CREATE TABLE milestones (
    id           TEXT NOT NULL,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    position     INTEGER NOT NULL,
    planned_on   TEXT NOT NULL,
    owner_role   TEXT NOT NULL,
    owner_id     TEXT,
    client_action INTEGER NOT NULL,
    completed_at TEXT,
    PRIMARY KEY (order_id, key)
) WITHOUT ROWID;
CREATE INDEX milestones_open_due ON milestones (planned_on) WHERE completed_at IS NULL;
CREATE INDEX milestones_owner ON milestones (owner_id) WHERE owner_id IS NOT NULL;

CREATE TABLE follow_ups (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    occurred_at TEXT NOT NULL,
    status      TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX follow_ups_order ON follow_ups (order_id, occurred_at);

-- Messages to send (webhooks now; email and chat in a later issue), written in the same transaction as the
-- events that cause them. The dedupe key makes a rule idempotent.
CREATE TABLE outbox (
    position    INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    event_id    TEXT,
    kind        TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL UNIQUE,
    payload     TEXT NOT NULL,
    due_at      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';

CREATE TABLE order_number_counters (
    scope TEXT PRIMARY KEY,
    last  INTEGER NOT NULL
) WITHOUT ROWID;

-- Idempotency-Key: the first response to a POST, replayed for retries by the same user with the same key.
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    status_code INTEGER,
    body        TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
