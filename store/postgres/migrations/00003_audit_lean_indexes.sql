-- +goose Up
-- Every audit index is paid for on every decision, so the trail keeps the
-- ones the questions SREs ask need, and makes the rest partial:
--   - outcome: only decisions that were not allowed are indexed (denials
--     and errors, the rare ones); "outcome=allow" reads audit_time, where
--     allows are most rows.
--   - source: only the agent-side sources are indexed (hook, mcp,
--     validate, api); envoy and http, the bulk of the trail, read
--     audit_time.
--   - revision: not indexed; a revision's decisions lie together in time,
--     and audit_time with since/until finds them.
-- PostgreSQL proves "outcome = 'deny'" implies "outcome <> 'allow'", so the
-- queries are unchanged. Indexes on the partitioned parent reach every
-- partition, present and future.
DROP INDEX audit_source;
DROP INDEX audit_outcome;
DROP INDEX audit_revision;
CREATE INDEX audit_not_allowed ON audit (outcome, time DESC, id DESC) WHERE outcome <> 'allow';
CREATE INDEX audit_agent_source ON audit (source, time DESC, id DESC) WHERE source NOT IN ('envoy', 'http');
