-- +goose Up
-- The trace a decision belongs to (W3C trace id, 32 hex digits) and the
-- decision's own span (16 hex digits); empty for records written before
-- tracing, and for callers that gave no trace. Columns and the index added
-- on the partitioned parent reach every partition, present and future.
-- GET /v1/decisions?trace_id= reads the index.
ALTER TABLE audit ADD COLUMN trace_id text NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN span_id  text NOT NULL DEFAULT '';
CREATE INDEX audit_trace ON audit (trace_id, time DESC, id DESC) WHERE trace_id <> '';
