package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The audit table has one partition per UTC day, audit_pYYYYMMDD.
const partPrefix = "audit_p"

func partName(day time.Time) string { return partPrefix + day.UTC().Format("20060102") }

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// partitionLock serialises creating and dropping partitions across
// replicas (CREATE TABLE IF NOT EXISTS alone races on the catalog).
const partitionLock = `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit partitions'))`

// ensurePartitions creates the partitions of the days of times that are
// not known to exist.
func (s *Store) ensurePartitions(ctx context.Context, times []time.Time) error {
	var missing []time.Time
	s.mu.Lock()
	seen := map[string]bool{}
	for _, t := range times {
		d := dayOf(t)
		if name := partName(d); !s.parts[name] && !seen[name] {
			seen[name] = true
			missing = append(missing, d)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, partitionLock); err != nil {
			return err
		}
		for _, d := range missing {
			_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF audit FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{partName(d)}.Sanitize(), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)))
			if err != nil {
				return fmt.Errorf("create audit partition %s: %w", partName(d), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, d := range missing {
		s.parts[partName(d)] = true
	}
	s.mu.Unlock()
	return nil
}

// forgetPartitions clears what ensurePartitions knows, after another
// replica may have dropped some.
func (s *Store) forgetPartitions() {
	s.mu.Lock()
	clear(s.parts)
	s.mu.Unlock()
}

// PruneAudit drops the daily partitions wholly before before, then deletes
// the records before it from the day it falls in.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	var dropped []string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		n, dropped = 0, nil
		if _, err := tx.Exec(ctx, partitionLock); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'audit'::regclass`)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			day, err := time.Parse("20060102", strings.TrimPrefix(name, partPrefix))
			if err != nil || !strings.HasPrefix(name, partPrefix) || day.AddDate(0, 0, 1).After(before) {
				continue // not ours, or not wholly before the cutoff
			}
			var count int64
			ident := pgx.Identifier{name}.Sanitize()
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+ident).Scan(&count); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DROP TABLE `+ident); err != nil {
				return fmt.Errorf("drop audit partition %s: %w", name, err)
			}
			n += count
			dropped = append(dropped, name)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit WHERE time < $1`, before)
		if err != nil {
			return err
		}
		n += tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	s.mu.Lock()
	for _, name := range dropped {
		delete(s.parts, name)
	}
	s.mu.Unlock()
	return n, nil
}
