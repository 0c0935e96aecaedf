package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/xds/ports"
)

// persistentRegistry is the port discovery registry written through to
// the store, so a restarted gavel keeps its services' registrations (ids,
// ports and expiry times) and the control plane keeps routing to them. The
// in-memory registry stays the authority: a store write that fails is
// logged and the registration stands.
type persistentRegistry struct {
	*ports.Memory
	st  store.Leases
	log *slog.Logger
}

// newPersistentRegistry restores the live leases the store holds into mem
// and removes the rows it did not restore (expired, or their port taken).
func newPersistentRegistry(ctx context.Context, mem *ports.Memory, st store.Leases, log *slog.Logger) (*persistentRegistry, error) {
	rows, err := st.ListLeases(ctx)
	if err != nil {
		return nil, err
	}
	insts := make([]ports.Instance, len(rows))
	for i, l := range rows {
		insts[i] = ports.Instance{Service: l.Service, ID: l.ID, Address: l.Address, Port: l.Port, Labels: l.Labels,
			TTL: l.TTL, Expires: l.ExpiresAt}
	}
	restored := map[string]bool{}
	for _, id := range mem.Restore(insts) {
		restored[id] = true
	}
	for _, l := range rows {
		if !restored[l.ID] {
			if err := st.DeleteLease(ctx, l.Service, l.ID); err != nil {
				log.Warn("port discovery: stale lease not removed from the store", "service", l.Service, "id", l.ID, "err", err)
			}
		}
	}
	if len(restored) > 0 {
		log.Info("port discovery: registrations restored from the store", "leases", len(restored), "expired_or_dropped", len(rows)-len(restored))
	}
	return &persistentRegistry{Memory: mem, st: st, log: log}, nil
}

func (r *persistentRegistry) put(ctx context.Context, inst ports.Instance) {
	err := r.st.PutLease(ctx, store.Lease{Service: inst.Service, ID: inst.ID, Address: inst.Address, Port: inst.Port,
		Labels: inst.Labels, TTL: inst.TTL, ExpiresAt: inst.Expires})
	if err != nil {
		r.log.Warn("port discovery: lease not persisted; it lasts until gavel restarts", "service", inst.Service, "id", inst.ID, "err", err)
	}
}

// Register implements ports.Registry.
func (r *persistentRegistry) Register(ctx context.Context, req ports.Request) (ports.Instance, error) {
	inst, err := r.Memory.Register(ctx, req)
	if err == nil {
		r.put(ctx, inst)
	}
	return inst, err
}

// Renew implements ports.Registry.
func (r *persistentRegistry) Renew(ctx context.Context, service, id string, ttl time.Duration) (ports.Instance, error) {
	inst, err := r.Memory.Renew(ctx, service, id, ttl)
	if err == nil {
		r.put(ctx, inst)
	}
	return inst, err
}

// Release implements ports.Registry.
func (r *persistentRegistry) Release(ctx context.Context, service, id string) error {
	err := r.Memory.Release(ctx, service, id)
	if err == nil {
		if derr := r.st.DeleteLease(ctx, service, id); derr != nil {
			r.log.Warn("port discovery: released lease not removed from the store", "service", service, "id", id, "err", derr)
		}
	}
	return err
}

// Run sweeps expired leases from memory (ports.Memory.Run) and, every
// minute, from the store.
func (r *persistentRegistry) Run(ctx context.Context) error {
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				rows, err := r.st.ListLeases(ctx)
				if err != nil {
					continue
				}
				for _, l := range rows {
					if !now.Before(l.ExpiresAt) {
						_ = r.st.DeleteLease(ctx, l.Service, l.ID)
					}
				}
			}
		}
	}()
	return r.Memory.Run(ctx)
}

// eventRegistry publishes registrations and releases on the event bus
// (renewals are heartbeats and are not published; expiries show in the
// control plane's pushes).
type eventRegistry struct {
	ports.Registry
	bus     store.Bus
	replica string
}

func (r *eventRegistry) publish(ctx context.Context, action string, inst ports.Instance) {
	data, _ := json.Marshal(map[string]any{"action": action, "service": inst.Service, "id": inst.ID,
		"address": inst.Address, "port": inst.Port, "labels": inst.Labels})
	_ = r.bus.Publish(ctx, store.Event{Type: store.EventRegistration, Time: time.Now().UTC(), Replica: r.replica, Data: data})
}

// Register implements ports.Registry.
func (r *eventRegistry) Register(ctx context.Context, req ports.Request) (ports.Instance, error) {
	inst, err := r.Registry.Register(ctx, req)
	if err == nil {
		r.publish(ctx, "registered", inst)
	}
	return inst, err
}

// Release implements ports.Registry.
func (r *eventRegistry) Release(ctx context.Context, service, id string) error {
	err := r.Registry.Release(ctx, service, id)
	if err == nil {
		r.publish(ctx, "released", ports.Instance{Service: service, ID: id})
	}
	return err
}
