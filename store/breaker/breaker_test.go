package breaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var errDown = errors.New("dependency down")

// recorder collects OnChange callbacks.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) record(name string, from, to State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf("%s:%s->%s", name, from, to))
}

func (r *recorder) changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func fail(context.Context) error    { return errDown }
func succeed(context.Context) error { return nil }

func gauge(t *testing.T, b *Breaker) float64 {
	t.Helper()
	return testutil.ToFloat64(b.m.state.WithLabelValues(b.name))
}

// waitState polls State (which is what turns an expired open breaker
// half-open) until it is want.
func waitState(t *testing.T, b *Breaker, want State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", b.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStateMachine(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := New("redis", Options{OpenTimeout: 50 * time.Millisecond, Metrics: NewMetrics(reg)})
	var rec recorder
	b.OnChange(rec.record)
	ctx := t.Context()

	if got := gauge(t, b); got != 0 {
		t.Fatalf("gauge of a new breaker = %v, want 0", got)
	}
	for i := range 4 {
		if err := b.Execute(ctx, fail); !errors.Is(err, errDown) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if s := b.State(); s != Closed {
		t.Fatalf("after 4 failures: %s, want closed", s)
	}
	// A success resets the run: four more failures still leave it closed.
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		_ = b.Execute(ctx, fail)
	}
	if s := b.State(); s != Closed {
		t.Fatalf("after success and 4 failures: %s, want closed", s)
	}
	_ = b.Execute(ctx, fail) // the fifth in a row
	if s := b.State(); s != Open {
		t.Fatalf("after 5 consecutive failures: %s, want open", s)
	}
	if got := gauge(t, b); got != 2 {
		t.Fatalf("gauge when open = %v, want 2", got)
	}
	called := false
	err := b.Execute(ctx, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrOpen) || called {
		t.Fatalf("open breaker: err %v, called %v; want ErrOpen without a call", err, called)
	}

	waitState(t, b, HalfOpen)
	if got := gauge(t, b); got != 1 {
		t.Fatalf("gauge when half-open = %v, want 1", got)
	}
	// One probe at a time.
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second probe while one is in flight: %v, want ErrOpen", err)
	}
	done(errDown) // the probe failed: open again
	if s := b.State(); s != Open {
		t.Fatalf("after a failed probe: %s, want open", s)
	}
	waitState(t, b, HalfOpen)
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatal(err)
	}
	if s := b.State(); s != Closed {
		t.Fatalf("after a good probe: %s, want closed", s)
	}
	if got := gauge(t, b); got != 0 {
		t.Fatalf("gauge when closed again = %v, want 0", got)
	}

	want := []string{
		"redis:closed->open", "redis:open->half-open", "redis:half-open->open",
		"redis:open->half-open", "redis:half-open->closed",
	}
	if got := rec.changes(); !slices.Equal(got, want) {
		t.Fatalf("OnChange saw %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(b.m.changes.WithLabelValues("redis", "open")); got != 2 {
		t.Fatalf("transitions to open = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "gavel_circuit_breaker_state"); err != nil || n != 1 {
		t.Fatalf("gavel_circuit_breaker_state series = %d, %v; want 1", n, err)
	}
}

func TestCallerCancellationIsNotAFailure(t *testing.T) {
	b := New("x", Options{Failures: 2})
	for range 10 {
		_ = b.Execute(t.Context(), func(context.Context) error { return fmt.Errorf("get: %w", context.Canceled) })
	}
	if s := b.State(); s != Closed {
		t.Fatalf("after cancelled calls: %s, want closed", s)
	}
	_ = b.Execute(t.Context(), func(context.Context) error { return context.DeadlineExceeded })
	_ = b.Execute(t.Context(), func(context.Context) error { return context.DeadlineExceeded })
	if s := b.State(); s != Open {
		t.Fatalf("after 2 timeouts with Failures 2: %s, want open", s)
	}
}

func TestCustomFailureClassifier(t *testing.T) {
	notMine := errors.New("not found")
	b := New("x", Options{Failures: 1, IsFailure: func(err error) bool { return err != nil && !errors.Is(err, notMine) }})
	for range 3 {
		_ = b.Execute(t.Context(), func(context.Context) error { return notMine })
	}
	if s := b.State(); s != Closed {
		t.Fatalf("errors the classifier calls success opened it: %s", s)
	}
}

func TestOnChangeMayCallBackAndUnsubscribe(t *testing.T) {
	b := New("x", Options{Failures: 1, OpenTimeout: 20 * time.Millisecond})
	seen := make(chan State, 4)
	remove := b.OnChange(func(_ string, _, to State) {
		seen <- b.State() // calling the breaker from a callback must not deadlock
		_ = to
	})
	_ = b.Execute(t.Context(), fail)
	select {
	case s := <-seen:
		if s != Open {
			t.Fatalf("callback saw %s, want open", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no callback")
	}
	remove()
	var rec recorder
	b.OnChange(rec.record)
	waitState(t, b, HalfOpen) // a change after the removal
	if got := rec.changes(); !slices.Equal(got, []string{"x:open->half-open"}) {
		t.Fatalf("remaining subscriber saw %v", got)
	}
	if len(seen) != 0 {
		t.Fatalf("extra callbacks: %d", len(seen))
	}
}

func TestIsTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", refused, true},
		{"wrapped refused", fmt.Errorf("get: %w", refused), true},
		{"deadline", context.DeadlineExceeded, true},
		{"canceled", context.Canceled, false},
		{"open", ErrOpen, false},
		{"other", errors.New("WRONGTYPE"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTransient(tc.err); got != tc.want {
				t.Fatalf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestDo(t *testing.T) {
	transient := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	permanent := errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")
	fast := RetryOptions{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	for _, tc := range []struct {
		name      string
		errs      []error // returned by successive calls; nil after the list ends
		opts      RetryOptions
		wantCalls int
		wantErr   error
	}{
		{"success", nil, fast, 1, nil},
		{"transient then success", []error{transient, transient}, fast, 3, nil},
		{"transient every time: bounded attempts", []error{transient, transient, transient, transient}, fast, 3, transient},
		{"permanent is not retried", []error{permanent}, fast, 1, permanent},
		{"five attempts allowed", []error{transient, transient, transient, transient}, RetryOptions{MaxAttempts: 5, Initial: time.Millisecond}, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Retry: tc.opts, Failures: 100}
			b := New("x", opts)
			calls := 0
			err := b.Do(t.Context(), func(context.Context) error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls {
				t.Fatalf("%d calls, want %d", calls, tc.wantCalls)
			}
			if got, want := testutil.ToFloat64(b.m.retries.WithLabelValues("x")), float64(tc.wantCalls-1); got != want {
				t.Fatalf("retries metric %v, want %v", got, want)
			}
		})
	}
}

func TestDoNeverRetriesAnOpenBreaker(t *testing.T) {
	transient := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	b := New("x", Options{Failures: 2, OpenTimeout: time.Hour, Retry: RetryOptions{MaxAttempts: 10, Initial: time.Millisecond}})
	calls := 0
	start := time.Now()
	err := b.Do(t.Context(), func(context.Context) error { calls++; return transient })
	if !errors.Is(err, ErrOpen) {
		t.Fatalf("err %v, want ErrOpen once the breaker opened", err)
	}
	if calls != 2 {
		t.Fatalf("%d calls, want 2 (the breaker opens after 2 and Do stops)", calls)
	}
	calls = 0
	if err := b.Do(t.Context(), func(context.Context) error { calls++; return nil }); !errors.Is(err, ErrOpen) || calls != 0 {
		t.Fatalf("Do on an open breaker: err %v, %d calls; want ErrOpen, 0", err, calls)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestDoBoundsElapsedTime(t *testing.T) {
	transient := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	b := New("x", Options{Failures: 100, Retry: RetryOptions{MaxAttempts: 100, Initial: 20 * time.Millisecond, MaxElapsed: 60 * time.Millisecond}})
	start := time.Now()
	calls := 0
	err := b.Do(t.Context(), func(context.Context) error { calls++; return transient })
	if !errors.Is(err, transient) || calls < 2 || calls > 5 {
		t.Fatalf("err %v after %d calls; want the transient error after 2 to 5", err, calls)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %s, want about 60 ms", d)
	}
}

func TestDoStopsWhenContextEnds(t *testing.T) {
	transient := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	b := New("x", Options{Failures: 100, Retry: RetryOptions{MaxAttempts: 100, Initial: 20 * time.Millisecond, MaxElapsed: time.Minute}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := b.Do(ctx, func(context.Context) error { calls++; return transient })
	if err == nil || calls > 5 {
		t.Fatalf("err %v after %d calls; want an error after a few", err, calls)
	}
}
