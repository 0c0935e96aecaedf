package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gavel-dev/gavel/store"
)

// CreateKey stores k; an id, name or hash in use is store.ErrConflict.
func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	roles, _ := json.Marshal(nonNil(k.Roles))
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_keys (id, name, prefix, hash, roles, created_by, created_at, last_used, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Prefix, nonNilBytes(k.Hash), string(roles), k.CreatedBy, micros(k.CreatedAt), nullMicros(k.LastUsed), nullMicros(k.RevokedAt))
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed") || strings.Contains(err.Error(), "PRIMARY KEY") {
			return fmt.Errorf("create key %s: %w", k.Name, store.ErrConflict)
		}
		return fmt.Errorf("create key %s: %w", k.Name, err)
	}
	return nil
}

const keyColumns = `id, name, prefix, hash, roles, created_by, created_at, last_used, revoked_at`

// KeyByHash is the key with that sha256, revoked or not.
func (s *Store) KeyByHash(ctx context.Context, hash []byte) (store.Key, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Key{}, fmt.Errorf("key by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("key by hash: %w", err)
	}
	return k, nil
}

// ListKeys lists every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// RevokeKey revokes the key with id or name; revoking it again keeps the
// first revocation time.
func (s *Store) RevokeKey(ctx context.Context, idOrName string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? OR name = ?`,
		micros(at), idOrName, idOrName)
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", idOrName, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke key %s: %w", idOrName, store.ErrNotFound)
	}
	return nil
}

// TouchKey records a use at at (a later use than the one stored).
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used = MAX(COALESCE(last_used, 0), ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return fmt.Errorf("touch key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("touch key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanKey(row scanner) (store.Key, error) {
	var k store.Key
	var roles string
	var created int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &roles, &k.CreatedBy, &created, &used, &revoked); err != nil {
		return k, err
	}
	if err := json.Unmarshal([]byte(roles), &k.Roles); err != nil {
		return k, fmt.Errorf("key %s roles: %w", k.ID, err)
	}
	k.CreatedAt, k.LastUsed, k.RevokedAt = fromMicros(created), fromNullMicros(used), fromNullMicros(revoked)
	return k, nil
}
