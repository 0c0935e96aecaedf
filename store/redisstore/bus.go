package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
)

// BusOptions configure a [Bus]. Zero values mean defaults.
type BusOptions struct {
	// Channel is the Redis channel every replica publishes on and listens
	// to (default "gavel:events").
	Channel string
	// Replica names this gavel; the bus stamps it on the events it
	// publishes that name none (default: host name, process id and a
	// random suffix).
	Replica string
	// Buffer is how many events a local subscriber may fall behind before
	// it is dropped with store.ErrLagged (default 256).
	Buffer int
	// Queue is how many events may wait to be sent to Redis (default
	// 1024); past it they reach local subscribers only, and are counted.
	Queue int
	// PublishTimeout bounds one send to Redis (default 100 ms).
	PublishTimeout time.Duration
	// HealthInterval is how long the subscription may be silent before it
	// is pinged; a ping that gets no answer in as long again means Redis
	// is gone (default 1 s).
	HealthInterval time.Duration
	// Breaker guards publishing (default: a breaker of its own named
	// "redis").
	Breaker *breaker.Breaker
	// Metrics defaults to unregistered metrics.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Bus is the event bus across replicas. Each process keeps one Redis
// subscription and fans events out to its own subscribers through an
// in-process store.MemoryBus, so a thousand WebSocket clients cost one
// Redis connection, not a thousand.
//
// Delivery: Publish hands the event to local subscribers at once and
// queues it for Redis, as the event's JSON with one more field, "origin",
// naming this bus; when it comes back from Redis, the bus recognises its
// own origin and drops it, so every subscriber sees an event once. Other replicas deliver it to theirs. Like Redis pub/sub
// itself, delivery across replicas is at most once: a send that fails is
// retried briefly (store/breaker's Do), and events that still cannot be
// sent stay on the replica that published them.
//
// Fallback: while the subscription is down or sending fails, the bus is
// degraded ([Bus.Degraded], gavel_event_bus_degraded 1): local subscribers
// still get every local event, and the subscription is re-established in
// the background with exponential backoff.
type Bus struct {
	client   redis.UniversalClient
	channel  string
	replica  string
	origin   string
	local    *store.MemoryBus
	queue    chan []byte
	timeout  time.Duration
	interval time.Duration
	br       *breaker.Breaker
	m        *Metrics
	log      *slog.Logger

	mu         sync.Mutex
	subscribed bool
	subErr     error // why the subscription is down
	pubErr     error // the last send's error, until one succeeds
	notify     chan struct{}
}

var _ store.Bus = (*Bus)(nil)

// NewBus returns a bus on client; [Bus.Run] connects it.
func NewBus(client redis.UniversalClient, opts BusOptions) *Bus {
	if opts.Channel == "" {
		opts.Channel = "gavel:events"
	}
	if opts.Replica == "" {
		opts.Replica = DefaultReplica()
	}
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 100 * time.Millisecond
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = time.Second
	}
	if opts.Breaker == nil {
		opts.Breaker = breaker.New("redis", breaker.Options{})
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Bus{
		client:   client,
		channel:  opts.Channel,
		replica:  opts.Replica,
		origin:   randomID(),
		local:    store.NewMemoryBus(opts.Buffer),
		queue:    make(chan []byte, opts.Queue),
		timeout:  opts.PublishTimeout,
		interval: opts.HealthInterval,
		br:       opts.Breaker,
		m:        opts.Metrics,
		log:      opts.Logger,
		subErr:   errors.New("not subscribed yet"),
		notify:   make(chan struct{}),
	}
	b.m.degraded.Set(1)
	return b
}

// DefaultReplica names this process: host name, process id and a random
// suffix.
func DefaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gavel"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomID()[:6])
}

func randomID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// wireEvent is an event as sent over Redis: the event's own JSON plus the
// bus it came from.
type wireEvent struct {
	store.Event
	Origin string `json:"origin"`
}

// Replica is the id the bus stamps on the events it publishes that name
// none.
func (b *Bus) Replica() string { return b.replica }

// Publish delivers e to this replica's subscribers and queues it for the
// others. It never blocks on Redis or on a subscriber, and fails only for
// an event that cannot be encoded. An empty e.Replica is set to this
// replica, a zero e.Time to now.
func (b *Bus) Publish(ctx context.Context, e store.Event) error {
	if e.Replica == "" {
		e.Replica = b.replica
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	msg, err := json.Marshal(wireEvent{Event: e, Origin: b.origin})
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	_ = b.local.Publish(ctx, e)
	select {
	case b.queue <- msg:
	default:
		b.m.pubDropped.Inc()
	}
	return nil
}

// Subscribe delivers the events published on any replica after it
// returns, until ctx ends or the subscription is closed.
func (b *Bus) Subscribe(ctx context.Context) store.Subscription { return b.local.Subscribe(ctx) }

// Subscribers is how many local subscriptions are open.
func (b *Bus) Subscribers() int { return b.local.Subscribers() }

// Degraded reports whether events are confined to this replica: the
// subscription is down or sending to Redis failed last time.
func (b *Bus) Degraded() bool { return b.Err() != nil }

// Err says why the bus is degraded, or nil.
func (b *Bus) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errLocked()
}

func (b *Bus) errLocked() error {
	if !b.subscribed {
		return fmt.Errorf("subscription down: %w", b.subErr)
	}
	if b.pubErr != nil {
		return fmt.Errorf("publish: %w", b.pubErr)
	}
	return nil
}

// Changed is closed at the next change of [Bus.Err] (for tests and
// readiness watchers).
func (b *Bus) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.notify
}

// update changes the bus's health under its lock and publishes the result.
func (b *Bus) update(f func()) {
	b.mu.Lock()
	before := b.errLocked()
	f()
	after := b.errLocked()
	if (before == nil) != (after == nil) {
		if after != nil {
			b.m.degraded.Set(1)
			b.log.Warn("event bus degraded: events stay on this replica", "replica", b.replica, "err", after)
		} else {
			b.m.degraded.Set(0)
			b.log.Info("event bus connected across replicas", "replica", b.replica, "channel", b.channel)
		}
	}
	if before != after {
		close(b.notify)
		b.notify = make(chan struct{})
	}
	b.mu.Unlock()
}

// Run keeps the subscription up and sends queued events until ctx ends.
func (b *Bus) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { b.sendLoop(ctx) })
	b.subscribeLoop(ctx)
	wg.Wait()
	return nil
}

// sendLoop sends queued events, as many as are waiting in one pipeline.
func (b *Bus) sendLoop(ctx context.Context) {
	batch := make([][]byte, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-b.queue:
			batch = append(batch[:0], msg)
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case msg := <-b.queue:
				batch = append(batch, msg)
			default:
				break fill
			}
		}
		err := b.br.Do(ctx, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, b.timeout)
			defer cancel()
			_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, msg := range batch {
					p.Publish(ctx, b.channel, msg)
				}
				return nil
			})
			return err
		})
		if err != nil && ctx.Err() == nil {
			b.m.errors.WithLabelValues(opPublish).Inc()
			b.m.pubDropped.Add(float64(len(batch)))
		}
		if ctx.Err() == nil {
			b.update(func() { b.pubErr = err })
		}
	}
}

// subscribeLoop holds the subscription, re-establishing it with backoff.
func (b *Bus) subscribeLoop(ctx context.Context) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     50 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         2 * time.Second,
	}
	bo.Reset()
	for ctx.Err() == nil {
		err := b.receive(ctx, bo.Reset)
		if ctx.Err() != nil {
			break
		}
		b.m.errors.WithLabelValues(opSubscribe).Inc()
		b.update(func() { b.subscribed, b.subErr = false, err })
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	b.update(func() { b.subscribed, b.subErr = false, errors.New("stopped") })
}

// receive subscribes and delivers other replicas' events until the
// connection fails or ctx ends.
func (b *Bus) receive(ctx context.Context, connected func()) error {
	ps := b.client.Subscribe(ctx)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks a read
	defer stop()
	if err := ps.Subscribe(ctx, b.channel); err != nil {
		return fmt.Errorf("subscribe %s: %w", b.channel, err)
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, b.interval)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var timeout interface{ Timeout() bool }
			if errors.As(err, &timeout) && timeout.Timeout() && !pinged {
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				pinged = true
				continue
			}
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				connected()
				b.update(func() { b.subscribed, b.subErr, b.pubErr = true, nil, nil })
			}
		case *redis.Message:
			b.deliver(ctx, m.Payload)
		}
	}
}

// deliver hands another replica's event to the local subscribers.
func (b *Bus) deliver(ctx context.Context, payload string) {
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		b.m.errors.WithLabelValues(opDecode).Inc()
		return
	}
	if w.Origin == b.origin {
		return // delivered locally when it was published
	}
	_ = b.local.Publish(ctx, w.Event)
}
