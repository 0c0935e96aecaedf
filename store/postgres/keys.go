package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/internal/dbutil"
)

// CreateKey stores k; an id, name or hash in use is store.ErrConflict.
func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, name, prefix, hash, roles, created_by, created_at, last_used, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.Name, k.Prefix, nonNil(k.Hash), nonNil(k.Roles), k.CreatedBy, dbutil.Time(k.CreatedAt), nullTime(k.LastUsed), nullTime(k.RevokedAt))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("create key %s: %w", k.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.Name, err)
	}
	return nil
}

const keyColumns = `id, name, prefix, hash, roles, created_by, created_at, last_used, revoked_at`

// KeyByHash is the key with that sha256, revoked or not.
func (s *Store) KeyByHash(ctx context.Context, hash []byte) (store.Key, error) {
	keys, err := s.keys(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash)
	if err != nil {
		return store.Key{}, fmt.Errorf("key by hash: %w", err)
	}
	if len(keys) == 0 {
		return store.Key{}, fmt.Errorf("key by hash: %w", store.ErrNotFound)
	}
	return keys[0], nil
}

// ListKeys lists every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	keys, err := s.keys(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// RevokeKey revokes the key with id or name; revoking it again keeps the
// first revocation time.
func (s *Store) RevokeKey(ctx context.Context, idOrName string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 OR name = $2`,
		dbutil.Time(at), idOrName)
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", idOrName, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke key %s: %w", idOrName, store.ErrNotFound)
	}
	return nil
}

// TouchKey records a use at at (a later use than the one stored).
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used = GREATEST(last_used, $1) WHERE id = $2`, dbutil.Time(at), id)
	if err != nil {
		return fmt.Errorf("touch key %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("touch key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) keys(ctx context.Context, query string, args ...any) ([]store.Key, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Key, error) {
		var k store.Key
		var used, revoked *time.Time
		err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.Roles, &k.CreatedBy, &k.CreatedAt, &used, &revoked)
		k.CreatedAt, k.LastUsed, k.RevokedAt = k.CreatedAt.UTC(), fromNullTime(used), fromNullTime(revoked)
		return k, err
	})
	return dbutil.Nil(out), err
}
