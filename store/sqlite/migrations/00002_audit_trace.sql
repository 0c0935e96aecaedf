-- +goose Up
-- The trace a decision belongs to (W3C trace id, 32 hex digits) and the
-- decision's own span (16 hex digits); empty for records written before
-- tracing, and for callers that gave no trace. GET /v1/decisions?trace_id=
-- reads the index.
ALTER TABLE audit ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN span_id  TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_trace ON audit (trace_id, time, id) WHERE trace_id != '';
