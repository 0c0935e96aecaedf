package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gavel-dev/gavel/store"
)

// PutBundle stores b unless its revision is stored already.
func (s *Store) PutBundle(ctx context.Context, b store.Bundle) (bool, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO bundles (revision, source, size, uploaded_by, uploaded_at, signed, tests, tarball)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (revision) DO NOTHING`,
		b.Revision, b.Source, b.Size, b.UploadedBy, micros(b.UploadedAt), b.Signed, b.Tests, nonNilBytes(b.Tarball))
	if err != nil {
		return false, fmt.Errorf("put bundle %s: %w", b.Revision, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Bundle is the bundle with revision, tarball included.
func (s *Store) Bundle(ctx context.Context, revision string) (store.Bundle, error) {
	var b store.Bundle
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT revision, source, size, uploaded_by, uploaded_at, signed, tests, tarball
		FROM bundles WHERE revision = ?`, revision).
		Scan(&b.Revision, &b.Source, &b.Size, &b.UploadedBy, &at, &b.Signed, &b.Tests, &b.Tarball)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Bundle{}, fmt.Errorf("bundle %s: %w", revision, store.ErrNotFound)
	}
	if err != nil {
		return store.Bundle{}, fmt.Errorf("bundle %s: %w", revision, err)
	}
	b.UploadedAt = fromMicros(at)
	return b, nil
}

// ListBundles lists bundles without tarballs, newest first.
func (s *Store) ListBundles(ctx context.Context) ([]store.Bundle, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT revision, source, size, uploaded_by, uploaded_at, signed, tests
		FROM bundles ORDER BY uploaded_at DESC, revision DESC`)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	defer rows.Close()
	var out []store.Bundle
	for rows.Next() {
		var b store.Bundle
		var at int64
		if err := rows.Scan(&b.Revision, &b.Source, &b.Size, &b.UploadedBy, &at, &b.Signed, &b.Tests); err != nil {
			return nil, fmt.Errorf("list bundles: %w", err)
		}
		b.UploadedAt = fromMicros(at)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	return out, nil
}

// Activate records that revision is active from now on. Watchers (this
// process's and other processes' on the same file) see it on their next
// poll.
func (s *Store) Activate(ctx context.Context, revision, by string) (store.Activation, error) {
	a := store.Activation{Revision: revision, By: by, At: time.Now().UTC().Truncate(time.Microsecond)}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Activation{}, fmt.Errorf("activate %s: %w", revision, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM bundles WHERE revision = ?`, revision).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Activation{}, fmt.Errorf("activate %s: %w", revision, store.ErrNotFound)
	}
	if err != nil {
		return store.Activation{}, fmt.Errorf("activate %s: %w", revision, err)
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO activations (revision, by, at) VALUES (?, ?, ?) RETURNING seq`,
		revision, by, micros(a.At)).Scan(&a.Seq)
	if err != nil {
		return store.Activation{}, fmt.Errorf("activate %s: %w", revision, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Activation{}, fmt.Errorf("activate %s: %w", revision, err)
	}
	return a, nil
}

// Active is the latest activation.
func (s *Store) Active(ctx context.Context) (store.Activation, error) {
	as, err := s.activations(ctx, `SELECT seq, revision, by, at FROM activations ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return store.Activation{}, fmt.Errorf("active bundle: %w", err)
	}
	if len(as) == 0 {
		return store.Activation{}, fmt.Errorf("active bundle: %w", store.ErrNotFound)
	}
	return as[0], nil
}

// Activations lists activations, newest first, at most limit.
func (s *Store) Activations(ctx context.Context, limit int) ([]store.Activation, error) {
	if limit <= 0 {
		limit = 100
	}
	as, err := s.activations(ctx, `SELECT seq, revision, by, at FROM activations ORDER BY seq DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list activations: %w", err)
	}
	return as, nil
}

// WatchActivations polls for activations after the latest one at the
// call, every PollInterval, and delivers each once, in order.
func (s *Store) WatchActivations(ctx context.Context) (<-chan store.Activation, error) {
	var last int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM activations`).Scan(&last); err != nil {
		return nil, fmt.Errorf("watch activations: %w", err)
	}
	ch := make(chan store.Activation)
	go func() {
		defer close(ch)
		t := time.NewTicker(s.opts.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			as, err := s.activations(ctx, `SELECT seq, revision, by, at FROM activations WHERE seq > ? ORDER BY seq`, last)
			if err != nil {
				if ctx.Err() == nil {
					s.opts.Logger.Warn("store: polling activations", "err", err)
				}
				continue
			}
			for _, a := range as {
				select {
				case ch <- a:
					last = a.Seq
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

func (s *Store) activations(ctx context.Context, query string, args ...any) ([]store.Activation, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Activation
	for rows.Next() {
		var a store.Activation
		var at int64
		if err := rows.Scan(&a.Seq, &a.Revision, &a.By, &at); err != nil {
			return nil, err
		}
		a.At = fromMicros(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
