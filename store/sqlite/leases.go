package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gavel-dev/gavel/store"
)

// PutLease stores or replaces the lease (service, id).
func (s *Store) PutLease(ctx context.Context, l store.Lease) error {
	labels, err := json.Marshal(l.Labels)
	if err != nil {
		return fmt.Errorf("put lease %s/%s: %w", l.Service, l.ID, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO leases (service, id, address, port, labels, ttl_ns, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (service, id) DO UPDATE SET address = excluded.address, port = excluded.port,
			labels = excluded.labels, ttl_ns = excluded.ttl_ns, expires_at = excluded.expires_at`,
		l.Service, l.ID, l.Address, l.Port, string(labels), int64(l.TTL), micros(l.ExpiresAt))
	if err != nil {
		return fmt.Errorf("put lease %s/%s: %w", l.Service, l.ID, err)
	}
	return nil
}

// DeleteLease removes the lease (service, id) if it is there.
func (s *Store) DeleteLease(ctx context.Context, service, id string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM leases WHERE service = ? AND id = ?`, service, id); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", service, id, err)
	}
	return nil
}

// ListLeases lists every lease by service and id, expired ones included.
func (s *Store) ListLeases(ctx context.Context) ([]store.Lease, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT service, id, address, port, labels, ttl_ns, expires_at FROM leases ORDER BY service, id`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	var out []store.Lease
	for rows.Next() {
		var l store.Lease
		var labels string
		var ttl, exp int64
		if err := rows.Scan(&l.Service, &l.ID, &l.Address, &l.Port, &labels, &ttl, &exp); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		if err := json.Unmarshal([]byte(labels), &l.Labels); err != nil {
			return nil, fmt.Errorf("lease %s/%s labels: %w", l.Service, l.ID, err)
		}
		l.TTL, l.ExpiresAt = time.Duration(ttl), fromMicros(exp)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return out, nil
}
