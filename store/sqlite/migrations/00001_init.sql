-- +goose Up
-- Times are unix microseconds (UTC); string arrays are JSON.

CREATE TABLE audit (
    seq            INTEGER PRIMARY KEY,
    id             TEXT    NOT NULL,
    time           INTEGER NOT NULL,
    source         TEXT    NOT NULL,
    principal      TEXT    NOT NULL DEFAULT '',
    action         TEXT    NOT NULL DEFAULT '',
    resource       TEXT    NOT NULL DEFAULT '',
    outcome        TEXT    NOT NULL,
    error_code     TEXT    NOT NULL DEFAULT '',
    reasons        TEXT    NOT NULL DEFAULT '[]',
    rule_ids       TEXT    NOT NULL DEFAULT '[]',
    entry          TEXT    NOT NULL DEFAULT '',
    revision       TEXT    NOT NULL DEFAULT '',
    dry_run        INTEGER NOT NULL DEFAULT 0,
    cached         INTEGER NOT NULL DEFAULT 0,
    latency_ns     INTEGER NOT NULL DEFAULT 0,
    correlation_id TEXT    NOT NULL DEFAULT '',
    input_digest   TEXT    NOT NULL DEFAULT '',
    input          BLOB,
    UNIQUE (id, time)
);
CREATE INDEX audit_time ON audit (time, id);
CREATE INDEX audit_source ON audit (source, time, id);
CREATE INDEX audit_outcome ON audit (outcome, time, id);
CREATE INDEX audit_principal ON audit (principal, time, id);
CREATE INDEX audit_revision ON audit (revision, time, id);

-- One row per rule id of a record, so the Rule filter is an index lookup.
CREATE TABLE audit_rules (
    rule TEXT    NOT NULL,
    seq  INTEGER NOT NULL REFERENCES audit (seq) ON DELETE CASCADE,
    PRIMARY KEY (rule, seq)
) WITHOUT ROWID;
CREATE INDEX audit_rules_seq ON audit_rules (seq);

CREATE TABLE bundles (
    revision    TEXT    PRIMARY KEY,
    source      TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_by TEXT    NOT NULL,
    uploaded_at INTEGER NOT NULL,
    signed      INTEGER NOT NULL,
    tests       INTEGER NOT NULL,
    tarball     BLOB    NOT NULL
);
CREATE INDEX bundles_uploaded ON bundles (uploaded_at);

CREATE TABLE activations (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    revision TEXT    NOT NULL REFERENCES bundles (revision),
    by       TEXT    NOT NULL,
    at       INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    roles      TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_used  INTEGER,
    revoked_at INTEGER
);

CREATE TABLE leases (
    service    TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    port       INTEGER NOT NULL,
    labels     TEXT    NOT NULL,
    ttl_ns     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (service, id)
);
