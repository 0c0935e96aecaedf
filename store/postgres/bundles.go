package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/internal/dbutil"
)

// PutBundle stores b unless its revision is stored already.
func (s *Store) PutBundle(ctx context.Context, b store.Bundle) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO bundles (revision, source, size, uploaded_by, uploaded_at, signed, tests, tarball)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (revision) DO NOTHING`,
		b.Revision, b.Source, b.Size, b.UploadedBy, dbutil.Time(b.UploadedAt), b.Signed, b.Tests, nonNil(b.Tarball))
	if err != nil {
		return false, fmt.Errorf("put bundle %s: %w", b.Revision, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Bundle is the bundle with revision, tarball included.
func (s *Store) Bundle(ctx context.Context, revision string) (store.Bundle, error) {
	var b store.Bundle
	err := s.pool.QueryRow(ctx, `SELECT revision, source, size, uploaded_by, uploaded_at, signed, tests, tarball
		FROM bundles WHERE revision = $1`, revision).
		Scan(&b.Revision, &b.Source, &b.Size, &b.UploadedBy, &b.UploadedAt, &b.Signed, &b.Tests, &b.Tarball)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Bundle{}, fmt.Errorf("bundle %s: %w", revision, store.ErrNotFound)
	}
	if err != nil {
		return store.Bundle{}, fmt.Errorf("bundle %s: %w", revision, err)
	}
	b.UploadedAt = b.UploadedAt.UTC()
	return b, nil
}

// ListBundles lists bundles without tarballs, newest first.
func (s *Store) ListBundles(ctx context.Context) ([]store.Bundle, error) {
	rows, err := s.pool.Query(ctx, `SELECT revision, source, size, uploaded_by, uploaded_at, signed, tests
		FROM bundles ORDER BY uploaded_at DESC, revision DESC`)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Bundle, error) {
		var b store.Bundle
		err := row.Scan(&b.Revision, &b.Source, &b.Size, &b.UploadedBy, &b.UploadedAt, &b.Signed, &b.Tests)
		b.UploadedAt = b.UploadedAt.UTC()
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	return dbutil.Nil(out), nil
}

// notice is the NOTIFY payload of an activation. Schema tells stores on
// other schemas of the same database (the channel is per database) to
// ignore it.
type notice struct {
	store.Activation
	Schema string `json:"schema"`
}

// Activate records the activation and notifies every replica listening,
// in one transaction: the notification goes out when, and only if, the
// activation commits. Activations take an advisory lock so their seq
// order is their commit order.
func (s *Store) Activate(ctx context.Context, revision, by string) (store.Activation, error) {
	var a store.Activation
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.activations'))`); err != nil {
			return err
		}
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM bundles WHERE revision = $1`, revision).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO activations (revision, by, at) VALUES ($1, $2, date_trunc('microseconds', now()))
			RETURNING seq, revision, by, at`, revision, by).Scan(&a.Seq, &a.Revision, &a.By, &a.At)
		if err != nil {
			return err
		}
		a.At = a.At.UTC()
		payload, _ := json.Marshal(notice{Activation: a, Schema: s.schema})
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, string(payload))
		return err
	})
	if err != nil {
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
	as, err := s.activations(ctx, `SELECT seq, revision, by, at FROM activations ORDER BY seq DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list activations: %w", err)
	}
	return as, nil
}

func (s *Store) activations(ctx context.Context, query string, args ...any) ([]store.Activation, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Activation, error) {
		var a store.Activation
		err := row.Scan(&a.Seq, &a.Revision, &a.By, &a.At)
		a.At = a.At.UTC()
		return a, err
	})
	return dbutil.Nil(out), err
}

// WatchActivations LISTENs on a connection of its own and, on each
// notification and every PollInterval besides, reads the activations after
// the last one it delivered: a notification lost with a connection is
// caught up by the next read, and each activation is delivered once, in
// seq order. A lost connection is reopened (with a poll meanwhile).
func (s *Store) WatchActivations(ctx context.Context) (<-chan store.Activation, error) {
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM activations`).Scan(&last); err != nil {
		return nil, fmt.Errorf("watch activations: %w", err)
	}
	conn, err := s.listen(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch activations: %w", err)
	}
	ch := make(chan store.Activation)
	go func() {
		defer close(ch)
		defer func() {
			if conn != nil {
				conn.Close(context.WithoutCancel(ctx))
			}
		}()
		deliver := func() bool {
			as, err := s.activations(ctx, `SELECT seq, revision, by, at FROM activations WHERE seq > $1 ORDER BY seq`, last)
			if err != nil {
				if ctx.Err() == nil {
					s.opts.Logger.Warn("store: reading activations", "err", err)
				}
				return ctx.Err() == nil
			}
			for _, a := range as {
				select {
				case ch <- a:
					last = a.Seq
				case <-ctx.Done():
					return false
				}
			}
			return true
		}
		for ctx.Err() == nil {
			if conn == nil || conn.IsClosed() {
				if conn != nil {
					conn.Close(context.WithoutCancel(ctx))
				}
				if conn, err = s.listen(ctx); err != nil {
					conn = nil
					if ctx.Err() == nil {
						s.opts.Logger.Warn("store: listening for activations; polling until it is back", "err", err)
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(s.opts.PollInterval):
					}
				}
				if !deliver() { // what was missed while not listening
					return
				}
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, s.opts.PollInterval)
			n, err := conn.WaitForNotification(wctx)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err == nil:
				var nt notice
				if json.Unmarshal([]byte(n.Payload), &nt) == nil && nt.Schema != s.schema {
					continue // another schema's activation
				}
			case errors.Is(err, context.DeadlineExceeded):
				// the backstop poll
			default:
				s.opts.Logger.Warn("store: activation listener lost; reconnecting", "err", err)
				conn.Close(context.WithoutCancel(ctx))
				conn = nil
			}
			if !deliver() {
				return
			}
		}
	}()
	return ch, nil
}

// listen opens a connection outside the pool (it is held for as long as
// the watch lasts) and LISTENs on Channel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, `LISTEN `+pgx.Identifier{Channel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}
