// Package breaker guards calls to a dependency gavel can run without (Redis)
// with a circuit breaker and bounded retries: after a run of consecutive
// failures the breaker opens and callers fail at once, without touching the
// network, until a probe after a timeout finds the dependency back.
//
// State is exported as the gauge gavel_circuit_breaker_state{name}: 0
// closed (calls go through), 1 half-open (one probe goes through), 2 open
// (calls are refused). Other packages watch changes with [Breaker.OnChange]
// (the event stream publishes them).
package breaker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is where a breaker is; its value is the metric's.
type State int

// States.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return HalfOpen
	case gobreaker.StateOpen:
		return Open
	}
	return Closed
}

// ErrOpen is returned, without calling the dependency, while the breaker is
// open or while a half-open breaker already has its probe in flight.
var ErrOpen = errors.New("circuit breaker open")

// Options configure a breaker. Zero values mean defaults.
type Options struct {
	// Failures is how many consecutive failures open the breaker (default 5).
	Failures uint32
	// OpenTimeout is how long it stays open before a probe is let through
	// (default 5 s).
	OpenTimeout time.Duration
	// IsFailure says which errors count against the dependency (default:
	// every error). The caller's own cancellation, context.Canceled, counts
	// as neither a success nor a failure.
	IsFailure func(error) bool
	// Retry bounds [Breaker.Do]'s retries.
	Retry RetryOptions
	// Metrics defaults to unregistered metrics.
	Metrics *Metrics
}

// Breaker is a named circuit breaker. It is safe for concurrent use.
type Breaker struct {
	name  string
	cb    *gobreaker.TwoStepCircuitBreaker[struct{}]
	retry RetryOptions
	m     *Metrics

	// pending holds state changes made under gobreaker's lock; they are
	// handed to the callbacks outside it, in order, so a callback may call
	// the breaker again.
	mu       sync.Mutex
	pending  []change
	draining bool
	subs     map[int]func(name string, from, to State)
	next     int
}

type change struct{ from, to State }

// New returns a closed breaker named name.
func New(name string, opts Options) *Breaker {
	if opts.Failures == 0 {
		opts.Failures = 5
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	isFailure := opts.IsFailure
	if isFailure == nil {
		isFailure = func(err error) bool { return err != nil }
	}
	b := &Breaker{name: name, retry: opts.Retry.withDefaults(), m: opts.Metrics,
		subs: map[int]func(string, State, State){}}
	failures := opts.Failures
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     opts.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsSuccessful: func(err error) bool {
			return !isFailure(err)
		},
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: b.changed,
	})
	b.m.state.WithLabelValues(name).Set(float64(Closed))
	return b
}

// Name is the breaker's name, its metric label.
func (b *Breaker) Name() string { return b.name }

// State is the breaker's state now. An open breaker whose timeout has
// passed turns half-open when it is next asked (here or by a call).
func (b *Breaker) State() State {
	s := fromGobreaker(b.cb.State())
	b.drain()
	return s
}

// OnChange calls f after every state change, in order, outside the
// breaker's lock. f must not block for long: it runs on the goroutine of
// the call that changed the state. The returned function unsubscribes.
func (b *Breaker) OnChange(f func(name string, from, to State)) (remove func()) {
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = f
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// Allow asks to make one call: on success the caller must report the
// call's error (nil for success) to done. While the breaker is open it
// returns ErrOpen at once.
func (b *Breaker) Allow() (done func(err error), err error) {
	d, err := b.cb.Allow()
	b.drain()
	if err != nil {
		return nil, ErrOpen
	}
	return func(err error) {
		d(err)
		b.drain()
	}, nil
}

// Execute calls fn once if the breaker lets it, and records the result.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	done, err := b.Allow()
	if err != nil {
		return err
	}
	err = fn(ctx)
	done(err)
	return err
}

// changed runs under gobreaker's lock: it sets the gauge and queues the
// change for the callbacks.
func (b *Breaker) changed(_ string, from, to gobreaker.State) {
	b.m.state.WithLabelValues(b.name).Set(float64(fromGobreaker(to)))
	b.m.changes.WithLabelValues(b.name, fromGobreaker(to).String()).Inc()
	b.mu.Lock()
	b.pending = append(b.pending, change{fromGobreaker(from), fromGobreaker(to)})
	b.mu.Unlock()
}

// drain hands queued changes to the callbacks. One goroutine drains at a
// time, so callbacks see changes in the order they happened.
func (b *Breaker) drain() {
	b.mu.Lock()
	if b.draining || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	b.draining = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		subs := make([]func(string, State, State), 0, len(b.subs))
		for _, f := range b.subs {
			subs = append(subs, f)
		}
		b.mu.Unlock()
		for _, c := range batch {
			for _, f := range subs {
				f(b.name, c.from, c.to)
			}
		}
		b.mu.Lock()
	}
	b.draining = false
	b.mu.Unlock()
}
