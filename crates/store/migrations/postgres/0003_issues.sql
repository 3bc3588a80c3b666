-- Issues and exceptions on orders (R5, R6, R10, R36): the whole issue as JSON in `body`, plus what the
-- issue queries filter on. Breach clocks are kept as elapsed seconds so that either engine can compare them
-- with the policy's limits without date arithmetic in SQL.
CREATE TABLE issues (
    id                     UUID PRIMARY KEY,
    order_id               UUID NOT NULL REFERENCES orders (id),
    kind                   TEXT NOT NULL,
    severity               TEXT NOT NULL,
    status                 TEXT NOT NULL,
    owner_id               UUID NOT NULL,
    discovered_at          TIMESTAMPTZ NOT NULL,
    opened_at              TIMESTAMPTZ NOT NULL,
    -- Seconds from discovery to opening (R36) and from opening to telling the client (R10, null until told).
    opened_after_seconds   BIGINT NOT NULL,
    client_told_at         TIMESTAMPTZ,
    told_after_seconds     BIGINT,
    expected_resolution_at TIMESTAMPTZ NOT NULL,
    body                   TEXT NOT NULL
);
CREATE INDEX issues_order ON issues (order_id, opened_at);
CREATE INDEX issues_open ON issues (opened_at) WHERE status <> 'resolved';
