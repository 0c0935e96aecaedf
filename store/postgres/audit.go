package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/internal/dbutil"
)

var auditCols = []string{"id", "time", "source", "principal", "action", "resource", "outcome", "error_code", "reasons",
	"rule_ids", "entry", "revision", "dry_run", "cached", "latency_ns", "correlation_id", "input_digest", "input", "trace_id", "span_id"}

var auditColumns = strings.Join(auditCols, ", ")

// WriteAudit stores recs and returns how many were new. A batch is first
// copied straight into the audit table, one COPY (atomic, and the cheapest
// write PostgreSQL has). A record that is stored already (a replay from the
// spill, a batch whose commit the writer did not see, an id twice in the
// batch) fails that COPY on the primary key, and nothing of it is kept; the
// batch is then written in one transaction through a per-connection staging
// table: COPY into it, then INSERT ... SELECT ... ON CONFLICT (id, time) DO
// NOTHING, so each record is stored once and the insert's row count is the
// number of new ones.
func (s *Store) WriteAudit(ctx context.Context, recs []policy.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	times := make([]time.Time, len(recs))
	for i, r := range recs {
		times[i] = r.Time
	}
	rows := &auditRows{recs: recs}
	staged := false
	for attempt := 0; ; attempt++ {
		if err := s.ensurePartitions(ctx, times); err != nil {
			return 0, fmt.Errorf("write audit: %w", err)
		}
		var n int64
		var err error
		rows.i = 0
		if staged {
			n, err = s.writeAuditStaged(ctx, rows)
		} else {
			n, err = s.pool.CopyFrom(ctx, pgx.Identifier{"audit"}, auditCols, rows)
		}
		var pe *pgconn.PgError
		switch {
		case err == nil:
			return int(n), nil
		case !staged && errors.As(err, &pe) && pe.Code == "23505":
			staged = true // some are stored already
			continue
		case attempt < 2 && errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition"):
			// Another replica pruned a partition we thought was there.
			s.forgetPartitions()
			continue
		}
		return 0, fmt.Errorf("write audit: %w", err)
	}
}

// writeAuditStaged writes rows through the staging table, skipping those
// stored already, and returns how many were new.
func (s *Store) writeAuditStaged(ctx context.Context, rows pgx.CopyFromSource) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS audit_stage (LIKE audit INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`)
		if err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_stage"}, auditCols, rows); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO audit (`+auditColumns+`) SELECT `+auditColumns+` FROM audit_stage
			ON CONFLICT (id, time) DO NOTHING`)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// auditRows feeds records to COPY, one reused row at a time (pgx encodes
// each row before asking for the next). The encoding runs on the CPU the
// decisions use, so it yields every yieldEvery rows rather than hold a P
// for a whole batch.
type auditRows struct {
	recs []policy.Record
	i    int
	row  []any
}

const yieldEvery = 32

func (r *auditRows) Next() bool {
	if r.i > 0 && r.i%yieldEvery == 0 {
		runtime.Gosched()
	}
	r.i++
	return r.i <= len(r.recs)
}

func (r *auditRows) Values() ([]any, error) {
	rec := &r.recs[r.i-1]
	r.row = append(r.row[:0], rec.ID, dbutil.Time(rec.Time), rec.Source, rec.Principal, rec.Action, rec.Resource, rec.Outcome,
		rec.ErrorCode, nonNil(rec.Reasons), nonNil(rec.RuleIDs), rec.Entry, rec.Revision, rec.DryRun, rec.Cached,
		int64(rec.Latency), rec.CorrelationID, rec.InputDigest, rec.Input, rec.TraceID, rec.SpanID)
	return r.row, nil
}

func (r *auditRows) Err() error { return nil }

// Decision is the record with id (the newest, should ids repeat).
func (s *Store) Decision(ctx context.Context, id string) (policy.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit WHERE id = $1 ORDER BY time DESC LIMIT 1`, id)
	if err != nil {
		return policy.Record{}, fmt.Errorf("decision %s: %w", id, err)
	}
	recs, err := collectRecords(rows)
	if err != nil {
		return policy.Record{}, fmt.Errorf("decision %s: %w", id, err)
	}
	if len(recs) == 0 {
		return policy.Record{}, fmt.Errorf("decision %s: %w", id, store.ErrNotFound)
	}
	return recs[0], nil
}

// Decisions lists records newest first by (time, id), filtered by q.
func (s *Store) Decisions(ctx context.Context, q store.DecisionQuery) (store.DecisionPage, error) {
	limit := dbutil.Limit(q.Limit)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, f := range [...]struct{ col, v string }{{"source", q.Source}, {"outcome", q.Outcome}, {"principal", q.Principal}, {"revision", q.Revision}, {"trace_id", q.TraceID}} {
		if f.v != "" {
			where = append(where, f.col+" = "+arg(f.v))
		}
	}
	if q.Rule != "" {
		where = append(where, "rule_ids @> ARRAY["+arg(q.Rule)+"::text]")
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= "+arg(dbutil.Time(q.Since)))
	}
	if !q.Until.IsZero() {
		where = append(where, "time < "+arg(dbutil.Time(q.Until)))
	}
	if q.Cursor != "" {
		t, id, err := dbutil.DecodeCursor(q.Cursor)
		if err != nil {
			return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
		}
		where = append(where, "(time, id) < ("+arg(t)+", "+arg(id)+")")
	}
	query := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time DESC, id DESC LIMIT " + arg(limit+1)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
	}
	recs, err := collectRecords(rows)
	if err != nil {
		return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
	}
	return dbutil.Page(recs, limit), nil
}

func collectRecords(rows pgx.Rows) ([]policy.Record, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (policy.Record, error) {
		var r policy.Record
		var latency int64
		err := row.Scan(&r.ID, &r.Time, &r.Source, &r.Principal, &r.Action, &r.Resource, &r.Outcome, &r.ErrorCode, &r.Reasons,
			&r.RuleIDs, &r.Entry, &r.Revision, &r.DryRun, &r.Cached, &latency, &r.CorrelationID, &r.InputDigest, &r.Input,
			&r.TraceID, &r.SpanID)
		r.Time = r.Time.UTC()
		r.Latency = time.Duration(latency)
		r.Reasons, r.RuleIDs, r.Input = dbutil.Nil(r.Reasons), dbutil.Nil(r.RuleIDs), dbutil.Nil(r.Input)
		return r, err
	})
}
