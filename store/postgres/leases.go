package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/internal/dbutil"
)

// PutLease stores or replaces the lease (service, id).
func (s *Store) PutLease(ctx context.Context, l store.Lease) error {
	labels := l.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO leases (service, id, address, port, labels, ttl_ns, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (service, id) DO UPDATE SET address = excluded.address, port = excluded.port,
			labels = excluded.labels, ttl_ns = excluded.ttl_ns, expires_at = excluded.expires_at`,
		l.Service, l.ID, l.Address, l.Port, labels, int64(l.TTL), dbutil.Time(l.ExpiresAt))
	if err != nil {
		return fmt.Errorf("put lease %s/%s: %w", l.Service, l.ID, err)
	}
	return nil
}

// DeleteLease removes the lease (service, id) if it is there.
func (s *Store) DeleteLease(ctx context.Context, service, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE service = $1 AND id = $2`, service, id); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", service, id, err)
	}
	return nil
}

// ListLeases lists every lease by service and id, expired ones included.
func (s *Store) ListLeases(ctx context.Context) ([]store.Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT service, id, address, port, labels, ttl_ns, expires_at FROM leases ORDER BY service, id`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Lease, error) {
		var l store.Lease
		var ttl int64
		err := row.Scan(&l.Service, &l.ID, &l.Address, &l.Port, &l.Labels, &ttl, &l.ExpiresAt)
		l.TTL, l.ExpiresAt = time.Duration(ttl), l.ExpiresAt.UTC()
		if len(l.Labels) == 0 {
			l.Labels = nil
		}
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return dbutil.Nil(out), nil
}
