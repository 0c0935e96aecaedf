package ports

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// freeListen pretends every port is free on the host.
func freeListen(string) (net.Listener, error) { return nopListener{}, nil }

type nopListener struct{ net.Listener }

func (nopListener) Close() error { return nil }

// drain empties Changes and reports whether it had been signalled.
func drain(r Registry) bool {
	select {
	case <-r.Changes():
		return true
	default:
		return false
	}
}

func TestRegisterErrors(t *testing.T) {
	m := NewMemory(Options{PortMin: 30000, PortMax: 30001, Listen: freeListen})
	held, err := m.Register(t.Context(), Request{Service: "web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"empty service", Request{Service: ""}, ErrBadService},
		{"upper case", Request{Service: "Web"}, ErrBadService},
		{"leading dash", Request{Service: "-web"}, ErrBadService},
		{"trailing dash", Request{Service: "web-"}, ErrBadService},
		{"dot", Request{Service: "web.api"}, ErrBadService},
		{"64 characters", Request{Service: fmt.Sprintf("%064d", 0)}, ErrBadService},
		{"negative port", Request{Service: "web", Port: -1}, ErrBadPort},
		{"port too large", Request{Service: "web", Port: 65536}, ErrBadPort},
		{"host name", Request{Service: "web", Address: "localhost"}, ErrBadAddress},
		{"ttl too long", Request{Service: "web", TTL: time.Hour}, ErrBadTTL},
		{"ttl negative", Request{Service: "web", TTL: -time.Second}, ErrBadTTL},
		{"port taken", Request{Service: "api", Port: held.Port}, ErrPortTaken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Register(t.Context(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Register(%+v) = %v, want %v", tc.req, err, tc.want)
			}
		})
	}
	// 63 characters is fine.
	if _, err := m.Register(t.Context(), Request{Service: fmt.Sprintf("a%062d", 0)}); err != nil {
		t.Fatalf("63-character name: %v", err)
	}
	if _, err := m.Register(t.Context(), Request{Service: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(t.Context(), Request{Service: "web"}); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("third allocation from a range of two: %v, want ErrNoFreePort", err)
	}
}

func TestRenewReleaseErrors(t *testing.T) {
	m := NewMemory(Options{Listen: freeListen})
	inst, err := m.Register(t.Context(), Request{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, service, id string
		ttl               time.Duration
		want              error
	}{
		{"unknown id", "web", "nope", 0, ErrNotFound},
		{"other service", "api", inst.ID, 0, ErrNotFound},
		{"ttl too long", "web", inst.ID, time.Hour, ErrBadTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Renew(t.Context(), tc.service, tc.id, tc.ttl); !errors.Is(err, tc.want) {
				t.Fatalf("Renew = %v, want %v", err, tc.want)
			}
			if tc.want == ErrNotFound {
				if err := m.Release(t.Context(), tc.service, tc.id); !errors.Is(err, tc.want) {
					t.Fatalf("Release = %v, want %v", err, tc.want)
				}
			}
		})
	}
}

func TestProbeUnknownAddress(t *testing.T) {
	m := NewMemory(Options{Listen: func(string) (net.Listener, error) {
		return nil, &net.OpError{Op: "listen", Err: syscall.EADDRNOTAVAIL}
	}})
	if _, err := m.Register(t.Context(), Request{Service: "web", Address: "192.0.2.1"}); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("allocating on an address not of this host: %v, want ErrBadAddress", err)
	}
}

func TestParallelAllocationsAreDistinctAndFree(t *testing.T) {
	// A port in the range that something on the host already listens on.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	lo := max(1024, busyPort-100)
	m := NewMemory(Options{PortMin: lo, PortMax: lo + 400})

	const n = 200
	got := make([]Instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = m.Register(t.Context(), Request{Service: "web"})
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, inst := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[inst.Port] {
			t.Fatalf("port %d allocated twice", inst.Port)
		}
		seen[inst.Port] = true
		if inst.Port == busyPort {
			t.Fatalf("allocated port %d that a listener holds", busyPort)
		}
		if inst.Port < lo || inst.Port > lo+400 {
			t.Fatalf("port %d outside %d-%d", inst.Port, lo, lo+400)
		}
	}
	// Every allocated port is free on the host: the service can bind it.
	// (Something else on the machine may have taken one since; that is
	// the race every allocator has, and the reason the lease can be
	// released.)
	bound := 0
	for port := range seen {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			ln.Close()
			bound++
		}
	}
	if bound < n-2 {
		t.Fatalf("only %d of %d allocated ports could be bound", bound, n)
	}
	list, _ := m.List(t.Context())
	if len(list) != n {
		t.Fatalf("List: %d instances, want %d", len(list), n)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Port >= list[i].Port {
			t.Fatalf("List not sorted by port: %d before %d", list[i-1].Port, list[i].Port)
		}
	}
}

func TestExplicitPort(t *testing.T) {
	clk := newClock()
	m := NewMemory(Options{PortMin: 30000, PortMax: 30000, Now: clk.Now, Listen: freeListen})
	inst, err := m.Register(t.Context(), Request{Service: "web", Address: "::1", Port: 8443, Labels: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Port != 8443 || inst.Address != "::1" || inst.Labels["zone"] != "a" || inst.TTL != 30*time.Second ||
		!inst.Expires.Equal(clk.Now().Add(30*time.Second)) || !inst.RegisteredAt.Equal(clk.Now()) || inst.ID == "" {
		t.Fatalf("instance %+v", inst)
	}
	// The caller's label map is not shared.
	inst.Labels["zone"] = "b"
	list, _ := m.List(t.Context())
	if list[0].Labels["zone"] != "a" {
		t.Fatal("registry shares its label map with callers")
	}
	// An explicit port outside the range is fine; the range still allocates.
	if inst, err = m.Register(t.Context(), Request{Service: "api"}); err != nil || inst.Port != 30000 {
		t.Fatalf("allocation beside explicit port: %+v %v", inst, err)
	}
	// An explicit port inside the range that a lease holds is taken.
	if _, err := m.Register(t.Context(), Request{Service: "web", Port: 30000}); !errors.Is(err, ErrPortTaken) {
		t.Fatalf("explicit leased port: %v", err)
	}
}

func TestRenewExtends(t *testing.T) {
	clk := newClock()
	m := NewMemory(Options{Now: clk.Now, Listen: freeListen})
	inst, err := m.Register(t.Context(), Request{Service: "web", TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(8 * time.Second)
	r, err := m.Renew(t.Context(), "web", inst.ID, 0)
	if err != nil || !r.Expires.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("renew with the lease's TTL: %+v %v", r, err)
	}
	clk.Advance(8 * time.Second) // past the first expiry
	m.sweep()
	if list, _ := m.List(t.Context()); len(list) != 1 {
		t.Fatalf("renewed lease expired: %v", list)
	}
	r, err = m.Renew(t.Context(), "web", inst.ID, time.Minute)
	if err != nil || r.TTL != time.Minute || !r.Expires.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("renew with a TTL: %+v %v", r, err)
	}
	clk.Advance(time.Minute)
	if _, err := m.Renew(t.Context(), "web", inst.ID, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renewing an expired lease: %v, want ErrNotFound", err)
	}
}

func TestReleaseFreesPort(t *testing.T) {
	m := NewMemory(Options{PortMin: 30000, PortMax: 30000, Listen: freeListen})
	inst, err := m.Register(t.Context(), Request{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(t.Context(), Request{Service: "web"}); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("range of one, twice: %v", err)
	}
	drain(m)
	if err := m.Release(t.Context(), "web", inst.ID); err != nil {
		t.Fatal(err)
	}
	if !drain(m) {
		t.Fatal("Release did not signal Changes")
	}
	if err := m.Release(t.Context(), "web", inst.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second release: %v", err)
	}
	again, err := m.Register(t.Context(), Request{Service: "api"})
	if err != nil || again.Port != inst.Port || again.ID == inst.ID {
		t.Fatalf("after release: %+v %v, want port %d with a new id", again, err, inst.Port)
	}
}

func TestExpiry(t *testing.T) {
	clk := newClock()
	m := NewMemory(Options{PortMin: 30000, PortMax: 30000, Now: clk.Now, Listen: freeListen})
	short, err := m.Register(t.Context(), Request{Service: "web", TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(t.Context(), Request{Service: "api", Port: 9000, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	drain(m)

	clk.Advance(4 * time.Second)
	m.sweep()
	if drain(m) {
		t.Fatal("sweep signalled with nothing expired")
	}
	clk.Advance(time.Second)
	m.sweep()
	if !drain(m) {
		t.Fatal("expiry did not signal Changes")
	}
	list, _ := m.List(t.Context())
	if len(list) != 1 || list[0].Service != "api" {
		t.Fatalf("after expiry: %+v", list)
	}
	// The expired lease's port is free again.
	inst, err := m.Register(t.Context(), Request{Service: "web"})
	if err != nil || inst.Port != short.Port {
		t.Fatalf("after expiry: %+v %v", inst, err)
	}
}

func TestListHidesExpiredBeforeSweep(t *testing.T) {
	clk := newClock()
	m := NewMemory(Options{Now: clk.Now, Listen: freeListen})
	if _, err := m.Register(t.Context(), Request{Service: "web", TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	drain(m)
	clk.Advance(time.Second)
	if list, _ := m.List(t.Context()); len(list) != 0 {
		t.Fatalf("List returned an expired lease: %+v", list)
	}
	if !drain(m) {
		t.Fatal("expiry seen by List did not signal Changes")
	}
}

func TestChangesCoalesce(t *testing.T) {
	m := NewMemory(Options{Listen: freeListen})
	for _, svc := range []string{"a", "b", "c"} {
		if _, err := m.Register(t.Context(), Request{Service: svc}); err != nil {
			t.Fatal(err)
		}
	}
	if !drain(m) {
		t.Fatal("no signal after three registrations")
	}
	if drain(m) {
		t.Fatal("three changes gave more than one pending signal")
	}
	// Failed calls change nothing and do not signal.
	_, _ = m.Register(t.Context(), Request{Service: "BAD"})
	_ = m.Release(t.Context(), "a", "nope")
	if drain(m) {
		t.Fatal("failed calls signalled")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	m := NewMemory(Options{Listen: freeListen})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"20000-29999", 20000, 29999, true},
		{"80-80", 80, 80, true},
		{"", 0, 0, false},
		{"20000", 0, 0, false},
		{"2-1", 0, 0, false},
		{"0-10", 0, 0, false},
		{"1-70000", 0, 0, false},
		{"a-b", 0, 0, false},
	}
	for _, tc := range tests {
		lo, hi, err := ParseRange(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParseRange(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
	}
}

func TestRestore(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := NewMemory(Options{Now: func() time.Time { return now }})
	got := m.Restore([]Instance{
		{Service: "orders", ID: "a", Address: "127.0.0.1", Port: 20001, TTL: time.Minute, Expires: now.Add(time.Minute)},
		{Service: "orders", ID: "b", Address: "127.0.0.1", Port: 20002, TTL: time.Minute, Expires: now.Add(-time.Second)}, // expired
		{Service: "billing", ID: "c", Address: "127.0.0.1", Port: 20001, TTL: time.Minute, Expires: now.Add(time.Minute)}, // port taken
		{Service: "Bad Name", ID: "d", Address: "127.0.0.1", Port: 20003, Expires: now.Add(time.Minute)},
	})
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("restored %v, want [a]", got)
	}
	select {
	case <-m.Changes():
	default:
		t.Fatal("a restore must signal a change")
	}
	if _, err := m.Renew(context.Background(), "orders", "a", 0); err != nil {
		t.Fatalf("renew a restored lease: %v", err)
	}
	if _, err := m.Register(context.Background(), Request{Service: "billing", Port: 20001}); err == nil {
		t.Fatal("a restored lease's port was handed out again")
	}
}
