-- +goose Up

-- The audit trail, partitioned by day (UTC) on time. The store creates a
-- day's partition before it writes to it (and today's and tomorrow's on
-- open); PruneAudit drops whole days. The primary key includes the
-- partition key, as PostgreSQL requires: (id, time) is also what makes a
-- replayed record a no-op (ON CONFLICT DO NOTHING).
CREATE TABLE audit (
    id             text        NOT NULL,
    time           timestamptz NOT NULL,
    source         text        NOT NULL,
    principal      text        NOT NULL DEFAULT '',
    action         text        NOT NULL DEFAULT '',
    resource       text        NOT NULL DEFAULT '',
    outcome        text        NOT NULL,
    error_code     text        NOT NULL DEFAULT '',
    reasons        text[]      NOT NULL DEFAULT '{}',
    rule_ids       text[]      NOT NULL DEFAULT '{}',
    entry          text        NOT NULL DEFAULT '',
    revision       text        NOT NULL DEFAULT '',
    dry_run        boolean     NOT NULL DEFAULT false,
    cached         boolean     NOT NULL DEFAULT false,
    latency_ns     bigint      NOT NULL DEFAULT 0,
    correlation_id text        NOT NULL DEFAULT '',
    input_digest   text        NOT NULL DEFAULT '',
    input          bytea,
    PRIMARY KEY (id, time)
) PARTITION BY RANGE (time);
CREATE INDEX audit_time ON audit (time DESC, id DESC);
CREATE INDEX audit_source ON audit (source, time DESC, id DESC);
CREATE INDEX audit_outcome ON audit (outcome, time DESC, id DESC);
CREATE INDEX audit_principal ON audit (principal, time DESC, id DESC);
CREATE INDEX audit_revision ON audit (revision, time DESC, id DESC);
CREATE INDEX audit_rule_ids ON audit USING gin (rule_ids);

CREATE TABLE bundles (
    revision    text        PRIMARY KEY,
    source      text        NOT NULL,
    size        integer     NOT NULL,
    uploaded_by text        NOT NULL,
    uploaded_at timestamptz NOT NULL,
    signed      boolean     NOT NULL,
    tests       integer     NOT NULL,
    tarball     bytea       NOT NULL
);
CREATE INDEX bundles_uploaded ON bundles (uploaded_at DESC);

-- Activate takes a transaction-level advisory lock before it inserts, so
-- seq order is commit order and a watcher reading "seq > last seen" misses
-- none.
CREATE TABLE activations (
    seq      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision text        NOT NULL REFERENCES bundles (revision),
    by       text        NOT NULL,
    at       timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id         text        PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    prefix     text        NOT NULL,
    hash       bytea       NOT NULL UNIQUE,
    roles      text[]      NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    last_used  timestamptz,
    revoked_at timestamptz
);

CREATE TABLE leases (
    service    text        NOT NULL,
    id         text        NOT NULL,
    address    text        NOT NULL,
    port       integer     NOT NULL,
    labels     jsonb       NOT NULL,
    ttl_ns     bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (service, id)
);
