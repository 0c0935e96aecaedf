package ports

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure [NewMemory]. Zero values mean the defaults.
type Options struct {
	// PortMin and PortMax bound allocated ports (default 20000-29999).
	PortMin, PortMax int
	// DefaultTTL is a lease's TTL when the request gives none (30s).
	DefaultTTL time.Duration
	// MaxTTL is the longest TTL a request may ask for (10m).
	MaxTTL time.Duration
	// SweepInterval is how often Run removes expired leases (1s).
	SweepInterval time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Listen probes whether a port is free on the host (net.Listen on tcp).
	Listen func(addr string) (net.Listener, error)
}

// Memory is a [Registry] in process memory.
type Memory struct {
	opts    Options
	changes chan struct{}

	mu     sync.Mutex
	leases map[string]*Instance // by ID
	byPort map[int]string       // port to lease ID
	next   int                  // where the next allocation starts looking
}

var _ Registry = (*Memory)(nil)

// NewMemory returns an empty in-memory registry.
func NewMemory(opts Options) *Memory {
	if opts.PortMin == 0 && opts.PortMax == 0 {
		opts.PortMin, opts.PortMax = 20000, 29999
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 30 * time.Second
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 10 * time.Minute
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Listen == nil {
		opts.Listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	return &Memory{
		opts:    opts,
		changes: make(chan struct{}, 1),
		leases:  map[string]*Instance{},
		byPort:  map[int]string{},
		next:    opts.PortMin,
	}
}

// ParseRange parses a port range written "MIN-MAX".
func ParseRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			hi, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("port range %q: want MIN-MAX within 1-65535, as in 20000-29999", s)
	}
	return lo, hi, nil
}

// Changes implements [Registry].
func (m *Memory) Changes() <-chan struct{} { return m.changes }

func (m *Memory) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Register implements [Registry].
func (m *Memory) Register(_ context.Context, req Request) (Instance, error) {
	if !ValidService(req.Service) {
		return Instance{}, fmt.Errorf("register %q: %w", req.Service, ErrBadService)
	}
	if req.Address == "" {
		req.Address = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(req.Address)
	if err != nil || ip.Zone() != "" {
		return Instance{}, fmt.Errorf("register %s: address %q: %w", req.Service, req.Address, ErrBadAddress)
	}
	req.Address = ip.String()
	if req.Port < 0 || req.Port > 65535 {
		return Instance{}, fmt.Errorf("register %s: port %d: %w", req.Service, req.Port, ErrBadPort)
	}
	ttl, err := m.ttl(req.TTL, m.opts.DefaultTTL)
	if err != nil {
		return Instance{}, fmt.Errorf("register %s: %w", req.Service, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	changed := m.sweepLocked(now)
	defer func() {
		if changed {
			m.signal()
		}
	}()
	port := req.Port
	if port == 0 {
		if port, err = m.allocateLocked(req.Address); err != nil {
			return Instance{}, fmt.Errorf("register %s: %w", req.Service, err)
		}
	} else if id, ok := m.byPort[port]; ok {
		other := m.leases[id]
		return Instance{}, fmt.Errorf("register %s: port %d (held by %s until %s): %w",
			req.Service, port, other.Service, other.Expires.UTC().Format(time.RFC3339), ErrPortTaken)
	}
	inst := &Instance{
		Service:      req.Service,
		ID:           newID(),
		Address:      req.Address,
		Port:         port,
		Labels:       maps.Clone(req.Labels),
		TTL:          ttl,
		Expires:      now.Add(ttl),
		RegisteredAt: now,
	}
	m.leases[inst.ID] = inst
	m.byPort[port] = inst.ID
	changed = true
	return inst.clone(), nil
}

// Renew implements [Registry].
func (m *Memory) Renew(_ context.Context, service, id string, ttl time.Duration) (Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	if m.sweepLocked(now) {
		defer m.signal()
	}
	inst, ok := m.leases[id]
	if !ok || inst.Service != service {
		return Instance{}, fmt.Errorf("renew %s/%s: %w", service, id, ErrNotFound)
	}
	ttl, err := m.ttl(ttl, inst.TTL)
	if err != nil {
		return Instance{}, fmt.Errorf("renew %s/%s: %w", service, id, err)
	}
	inst.TTL = ttl
	inst.Expires = now.Add(ttl)
	return inst.clone(), nil
}

// Release implements [Registry].
func (m *Memory) Release(_ context.Context, service, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := m.sweepLocked(m.opts.Now())
	inst, ok := m.leases[id]
	if ok && inst.Service == service {
		m.removeLocked(inst)
		changed = true
	}
	if changed {
		m.signal()
	}
	if !ok || inst.Service != service {
		return fmt.Errorf("release %s/%s: %w", service, id, ErrNotFound)
	}
	return nil
}

// List implements [Registry].
func (m *Memory) List(_ context.Context) ([]Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sweepLocked(m.opts.Now()) {
		m.signal()
	}
	out := make([]Instance, 0, len(m.leases))
	for _, inst := range m.leases {
		out = append(out, inst.clone())
	}
	slices.SortFunc(out, func(a, b Instance) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	return out, nil
}

// Run removes expired leases every SweepInterval until ctx ends.
func (m *Memory) Run(ctx context.Context) error {
	t := time.NewTicker(m.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep removes expired leases and signals Changes when it removed any.
func (m *Memory) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sweepLocked(m.opts.Now()) {
		m.signal()
	}
}

func (m *Memory) sweepLocked(now time.Time) (removed bool) {
	for _, inst := range m.leases {
		if !now.Before(inst.Expires) {
			m.removeLocked(inst)
			removed = true
		}
	}
	return removed
}

func (m *Memory) removeLocked(inst *Instance) {
	delete(m.leases, inst.ID)
	delete(m.byPort, inst.Port)
}

// allocateLocked finds a port in the range that no lease holds and nothing
// on the host listens on, starting after the last one handed out so that a
// port just released is not handed out again at once. It probes under the
// lock (a bind and a close per candidate), so concurrent registrations never
// pick the same port.
func (m *Memory) allocateLocked(address string) (int, error) {
	lo, hi := m.opts.PortMin, m.opts.PortMax
	n := hi - lo + 1
	for i := range n {
		port := lo + (m.next-lo+i)%n
		if _, leased := m.byPort[port]; leased {
			continue
		}
		ln, err := m.opts.Listen(net.JoinHostPort(address, strconv.Itoa(port)))
		if err != nil {
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				return 0, fmt.Errorf("allocate a port on %s: %w", address, ErrBadAddress)
			}
			continue // in use, or not ours to bind
		}
		ln.Close()
		m.next = lo + (port-lo+1)%n
		return port, nil
	}
	return 0, fmt.Errorf("%d-%d on %s: %w", lo, hi, address, ErrNoFreePort)
}

func (m *Memory) ttl(ttl, def time.Duration) (time.Duration, error) {
	if ttl == 0 {
		ttl = def
	}
	if ttl < time.Second || ttl > m.opts.MaxTTL {
		return 0, fmt.Errorf("ttl %s: want 1s to %s: %w", ttl, m.opts.MaxTTL, ErrBadTTL)
	}
	return ttl, nil
}

func (inst *Instance) clone() Instance {
	c := *inst
	c.Labels = maps.Clone(inst.Labels)
	return c
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Restore loads leases a persisted registry held (a restart), keeping
// their ids, ports and expiry times. Expired leases, and leases whose port
// is already held here, are skipped; the ids restored are returned.
func (m *Memory) Restore(insts []Instance) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	var restored []string
	for _, in := range insts {
		if !now.Before(in.Expires) || in.ID == "" || !ValidService(in.Service) {
			continue
		}
		if _, taken := m.byPort[in.Port]; taken {
			continue
		}
		if _, dup := m.leases[in.ID]; dup {
			continue
		}
		c := in.clone()
		m.leases[c.ID] = &c
		m.byPort[c.Port] = c.ID
		restored = append(restored, c.ID)
	}
	if len(restored) > 0 {
		m.signal()
	}
	return restored
}
