package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
)

// runBus starts a bus named replica on addr and stops it with the test.
func runBus(t *testing.T, addr, channel, replica string, opts BusOptions) *Bus {
	t.Helper()
	opts.Channel, opts.Replica = channel, replica
	opts.Logger = slog.New(slog.DiscardHandler)
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 200 * time.Millisecond
	}
	if opts.Breaker == nil {
		opts.Breaker = breaker.New("redis", breaker.Options{OpenTimeout: 100 * time.Millisecond})
	}
	b := NewBus(newClient(t, addr), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return b
}

// waitHealthy waits until the bus is subscribed and not degraded.
func waitHealthy(t *testing.T, b *Bus) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		ch := b.Changed()
		if !b.Degraded() {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("bus %s still degraded: %v", b.Replica(), b.Err())
		}
	}
}

func event(name string) store.Event {
	return store.Event{Type: store.EventDecision, Data: json.RawMessage(fmt.Sprintf(`{"name":%q}`, name))}
}

func name(e store.Event) string {
	var v struct{ Name string }
	_ = json.Unmarshal(e.Data, &v)
	return v.Name
}

// next receives the next event of sub, failing after 10 s.
func next(t *testing.T, sub store.Subscription) store.Event {
	t.Helper()
	select {
	case e, ok := <-sub.Events():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return store.Event{}
}

// expect receives the next events of sub and checks their names, in order.
func expect(t *testing.T, sub store.Subscription, names ...string) {
	t.Helper()
	for _, want := range names {
		if got := name(next(t, sub)); got != want {
			t.Fatalf("got event %q, want %q", got, want)
		}
	}
}

func TestBusDeliversOnceAcrossReplicas(t *testing.T) {
	requireRedis(t)
	ch := uniq(t) + "events"
	a := runBus(t, redisAddr(), ch, "replica-a", BusOptions{})
	b := runBus(t, redisAddr(), ch, "replica-b", BusOptions{})
	waitHealthy(t, a)
	waitHealthy(t, b)
	ctx := t.Context()
	sa, sb := a.Subscribe(ctx), b.Subscribe(ctx)
	defer sa.Close()
	defer sb.Close()

	if err := a.Publish(ctx, event("e1")); err != nil {
		t.Fatal(err)
	}
	e := next(t, sb)
	if name(e) != "e1" || e.Replica != "replica-a" || e.Time.IsZero() || e.Type != store.EventDecision {
		t.Fatalf("B got %+v", e)
	}
	// B's own event after A's: Redis orders them on A's subscription, so
	// by the time A hands e3 to sa it has seen (and dropped) e1's echo.
	if err := b.Publish(ctx, event("e3")); err != nil {
		t.Fatal(err)
	}
	expect(t, sa, "e1", "e3")
	if err := a.Publish(ctx, event("e4")); err != nil {
		t.Fatal(err)
	}
	expect(t, sb, "e3", "e4")
	if err := b.Publish(ctx, event("e5")); err != nil {
		t.Fatal(err)
	}
	expect(t, sa, "e4", "e5")
	expect(t, sb, "e5")
	// An event that names its replica keeps it, and is still delivered
	// once (the bus recognises its own events by origin, not by replica).
	named := event("e6")
	named.Replica = "replica-b"
	if err := a.Publish(ctx, named); err != nil {
		t.Fatal(err)
	}
	if e := next(t, sb); name(e) != "e6" || e.Replica != "replica-b" {
		t.Fatalf("B got %q from %q", name(e), e.Replica)
	}
	expect(t, sa, "e6")
	// Nothing else is pending: no event came twice.
	for _, s := range []store.Subscription{sa, sb} {
		select {
		case e := <-s.Events():
			t.Fatalf("extra event %q (replica %s)", name(e), e.Replica)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if a.Subscribers() != 1 || b.Subscribers() != 1 {
		t.Fatalf("subscribers %d, %d; want 1 each", a.Subscribers(), b.Subscribers())
	}
}

func TestBusOneRedisSubscriptionPerReplica(t *testing.T) {
	requireRedis(t)
	ch := uniq(t) + "events"
	a := runBus(t, redisAddr(), ch, "replica-a", BusOptions{})
	waitHealthy(t, a)
	for range 50 {
		s := a.Subscribe(t.Context())
		defer s.Close()
	}
	n, err := newClient(t, redisAddr()).PubSubNumSub(t.Context(), ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[ch] != 1 {
		t.Fatalf("Redis has %d subscriptions on %s for 50 local subscribers, want 1", n[ch], ch)
	}
}

func TestBusLaggingSubscriber(t *testing.T) {
	requireRedis(t)
	ch := uniq(t) + "events"
	a := runBus(t, redisAddr(), ch, "replica-a", BusOptions{})
	b := runBus(t, redisAddr(), ch, "replica-b", BusOptions{Buffer: 4})
	waitHealthy(t, a)
	waitHealthy(t, b)
	slow := b.Subscribe(t.Context())
	keeping := b.Subscribe(t.Context())
	for i := range 10 {
		if err := a.Publish(t.Context(), event(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		expect(t, keeping, fmt.Sprint(i))
	}
	n := 0
	for range slow.Events() {
		n++
	}
	if n != 4 || !errors.Is(slow.Err(), store.ErrLagged) {
		t.Fatalf("slow subscriber got %d events and %v; want 4 and ErrLagged", n, slow.Err())
	}
	if keeping.Err() != nil {
		t.Fatalf("a subscriber that kept up was ended: %v", keeping.Err())
	}
}

func TestBusFallsBackWhenRedisIsCut(t *testing.T) {
	requireRedis(t)
	ch := uniq(t) + "events"
	p := newProxy(t, redisAddr())
	m := NewMetrics(nil)
	a := runBus(t, p.Addr(), ch, "replica-a", BusOptions{Metrics: m})
	b := runBus(t, redisAddr(), ch, "replica-b", BusOptions{})
	waitHealthy(t, a)
	waitHealthy(t, b)
	if got := testutil.ToFloat64(m.degraded); got != 0 {
		t.Fatalf("gavel_event_bus_degraded %v when connected, want 0", got)
	}
	ctx := t.Context()
	sa, sb := a.Subscribe(ctx), b.Subscribe(ctx)
	defer sa.Close()
	defer sb.Close()

	p.Cut()
	eventually(t, "A to notice Redis is gone", a.Degraded)
	if got := testutil.ToFloat64(m.degraded); got != 1 {
		t.Fatalf("gavel_event_bus_degraded %v when cut, want 1", got)
	}
	start := time.Now()
	for i := range 3 {
		if err := a.Publish(ctx, event(fmt.Sprint("cut", i))); err != nil {
			t.Fatalf("publish with Redis cut: %v", err)
		}
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("publishing with Redis cut took %s", d)
	}
	expect(t, sa, "cut0", "cut1", "cut2")
	eventually(t, "A to give up sending them", func() bool { return testutil.ToFloat64(m.pubDropped) == 3 })
	if !a.Degraded() {
		t.Fatal("A not degraded while cut")
	}

	p.Restore()
	waitHealthy(t, a)
	if got := testutil.ToFloat64(m.degraded); got != 0 {
		t.Fatalf("gavel_event_bus_degraded %v after restore, want 0", got)
	}
	if err := b.Publish(ctx, event("from-b")); err != nil {
		t.Fatal(err)
	}
	expect(t, sa, "from-b")
	if err := a.Publish(ctx, event("from-a")); err != nil {
		t.Fatal(err)
	}
	expect(t, sa, "from-a")
	// B saw its own event, then A's after the restore; the events A
	// published while cut stayed on A.
	expect(t, sb, "from-b", "from-a")
}

func TestBusBeforeRunIsLocal(t *testing.T) {
	b := NewBus(NewClient(ClientOptions{Addr: "127.0.0.1:1"}), BusOptions{Logger: slog.New(slog.DiscardHandler)})
	if !b.Degraded() {
		t.Fatal("a bus that never connected is not degraded")
	}
	s := b.Subscribe(t.Context())
	if err := b.Publish(t.Context(), event("local")); err != nil {
		t.Fatal(err)
	}
	e := next(t, s)
	if name(e) != "local" || e.Replica != b.Replica() {
		t.Fatalf("got %+v", e)
	}
}
