package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/internal/dbutil"
)

const auditColumns = `id, time, source, principal, action, resource, outcome, error_code, reasons, rule_ids,
	entry, revision, dry_run, cached, latency_ns, correlation_id, input_digest, input, trace_id, span_id`

// yieldEvery is how many records WriteAudit inserts between yields.
const yieldEvery = 16

// WriteAudit stores recs in one transaction; a record whose (id, time) is
// stored already is skipped.
func (s *Store) WriteAudit(ctx context.Context, recs []policy.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("write audit: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO audit (`+auditColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id, time) DO NOTHING RETURNING seq`)
	if err != nil {
		return 0, fmt.Errorf("write audit: %w", err)
	}
	defer ins.Close()
	rule, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO audit_rules (rule, seq) VALUES (?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("write audit: %w", err)
	}
	defer rule.Close()
	n := 0
	for i, r := range recs {
		if i > 0 && i%yieldEvery == 0 {
			// The insert runs in this process, on the CPU the decisions
			// use: yield rather than hold a P for the whole batch.
			runtime.Gosched()
		}
		reasons, _ := json.Marshal(nonNil(r.Reasons))
		rules, _ := json.Marshal(nonNil(r.RuleIDs))
		var seq int64
		err := ins.QueryRowContext(ctx, r.ID, micros(r.Time), r.Source, r.Principal, r.Action, r.Resource, r.Outcome, r.ErrorCode,
			string(reasons), string(rules), r.Entry, r.Revision, r.DryRun, r.Cached, int64(r.Latency), r.CorrelationID,
			r.InputDigest, r.Input, r.TraceID, r.SpanID).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			continue // stored already
		}
		if err != nil {
			return 0, fmt.Errorf("write audit record %s: %w", r.ID, err)
		}
		n++
		for _, id := range r.RuleIDs {
			if _, err := rule.ExecContext(ctx, id, seq); err != nil {
				return 0, fmt.Errorf("write audit record %s: %w", r.ID, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("write audit: %w", err)
	}
	return n, nil
}

// Decision is the record with id (the newest, should ids repeat).
func (s *Store) Decision(ctx context.Context, id string) (policy.Record, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE id = ? ORDER BY time DESC LIMIT 1`, id)
	r, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return policy.Record{}, fmt.Errorf("decision %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return policy.Record{}, fmt.Errorf("decision %s: %w", id, err)
	}
	return r, nil
}

// Decisions lists records newest first by (time, id), filtered by q.
func (s *Store) Decisions(ctx context.Context, q store.DecisionQuery) (store.DecisionPage, error) {
	limit := dbutil.Limit(q.Limit)
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("source", q.Source)
	eq("outcome", q.Outcome)
	eq("principal", q.Principal)
	eq("revision", q.Revision)
	eq("trace_id", q.TraceID)
	if q.Rule != "" {
		where = append(where, "seq IN (SELECT seq FROM audit_rules WHERE rule = ?)")
		args = append(args, q.Rule)
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, micros(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, micros(q.Until))
	}
	if q.Cursor != "" {
		t, id, err := dbutil.DecodeCursor(q.Cursor)
		if err != nil {
			return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
		}
		where = append(where, "(time, id) < (?, ?)")
		args = append(args, t.UnixMicro(), id)
	}
	query := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time DESC, id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
	}
	defer rows.Close()
	var recs []policy.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return store.DecisionPage{}, fmt.Errorf("list decisions: %w", err)
	}
	return dbutil.Page(recs, limit), nil
}

// PruneAudit deletes the records older than before.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM audit WHERE time < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRecord(row scanner) (policy.Record, error) {
	var r policy.Record
	var t, latency int64
	var reasons, rules string
	err := row.Scan(&r.ID, &t, &r.Source, &r.Principal, &r.Action, &r.Resource, &r.Outcome, &r.ErrorCode, &reasons, &rules,
		&r.Entry, &r.Revision, &r.DryRun, &r.Cached, &latency, &r.CorrelationID, &r.InputDigest, &r.Input,
		&r.TraceID, &r.SpanID)
	if err != nil {
		return r, err
	}
	r.Time = fromMicros(t)
	r.Latency = time.Duration(latency)
	if err := json.Unmarshal([]byte(reasons), &r.Reasons); err != nil {
		return r, fmt.Errorf("record %s reasons: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(rules), &r.RuleIDs); err != nil {
		return r, fmt.Errorf("record %s rule ids: %w", r.ID, err)
	}
	r.Reasons, r.RuleIDs, r.Input = dbutil.Nil(r.Reasons), dbutil.Nil(r.RuleIDs), dbutil.Nil(r.Input)
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
