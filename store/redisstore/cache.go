package redisstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/breaker"
)

// CacheOptions configure a [Cache]. Zero values mean defaults.
type CacheOptions struct {
	// Prefix starts every key (default "gavel:dc:"); the rest is the
	// decision key in hex.
	Prefix string
	// GetTimeout bounds one lookup (default 5 ms): past it the lookup is a
	// miss and the decision is evaluated.
	GetTimeout time.Duration
	// SetTimeout bounds one write (default 50 ms). Writes run in the
	// background and never delay a decision.
	SetTimeout time.Duration
	// MaxSets is how many writes may be in flight (default 64); a write
	// beyond it is skipped and counted.
	MaxSets int
	// Breaker guards every call (default: a breaker of its own named
	// "redis"). While it is open, lookups are misses and writes are
	// skipped without touching the network.
	Breaker *breaker.Breaker
	// Metrics defaults to unregistered metrics.
	Metrics *Metrics
}

// Cache is the L2 decision cache in Redis, shared by every replica. It
// implements policy.SharedCache: every error is a miss, counted in
// gavel_redis_errors_total, never an error for the caller.
//
// A value is the decision as JSON (its own field names), without the
// per-evaluation ID and Cached flag; numbers in Fields, DynamicMetadata and
// UpdatedInput decode as json.Number, as a policy's result does.
type Cache struct {
	client     redis.UniversalClient
	prefix     string
	getTimeout time.Duration
	setTimeout time.Duration
	br         *breaker.Breaker
	m          *Metrics
	getDur     interface{ Observe(float64) }
	setDur     interface{ Observe(float64) }

	sets   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
}

var _ policy.SharedCache = (*Cache)(nil)

// NewCache returns a cache on client.
func NewCache(client redis.UniversalClient, opts CacheOptions) *Cache {
	if opts.Prefix == "" {
		opts.Prefix = "gavel:dc:"
	}
	if opts.GetTimeout <= 0 {
		opts.GetTimeout = 5 * time.Millisecond
	}
	if opts.SetTimeout <= 0 {
		opts.SetTimeout = 50 * time.Millisecond
	}
	if opts.MaxSets <= 0 {
		opts.MaxSets = 64
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Breaker == nil {
		opts.Breaker = breaker.New("redis", breaker.Options{})
	}
	return &Cache{
		client:     client,
		prefix:     opts.Prefix,
		getTimeout: opts.GetTimeout,
		setTimeout: opts.SetTimeout,
		br:         opts.Breaker,
		m:          opts.Metrics,
		getDur:     opts.Metrics.duration.WithLabelValues(opGet),
		setDur:     opts.Metrics.duration.WithLabelValues(opSet),
		sets:       make(chan struct{}, opts.MaxSets),
	}
}

// Key is the Redis key of a decision key.
func (c *Cache) Key(k policy.Key) string {
	b := make([]byte, len(c.prefix)+hex.EncodedLen(len(k)))
	n := copy(b, c.prefix)
	hex.Encode(b[n:], k[:])
	return string(b)
}

// Get returns the decision stored under k. Anything but a stored,
// decodable decision within GetTimeout is a miss.
func (c *Cache) Get(ctx context.Context, k policy.Key) (policy.Decision, bool) {
	if ctx.Err() != nil {
		return policy.Decision{}, false
	}
	done, err := c.br.Allow()
	if err != nil {
		return policy.Decision{}, false // open: no network at all
	}
	ctx, cancel := context.WithTimeout(ctx, c.getTimeout)
	start := time.Now()
	b, err := c.client.Get(ctx, c.Key(k)).Bytes()
	cancel()
	c.getDur.Observe(time.Since(start).Seconds())
	if errors.Is(err, redis.Nil) {
		done(nil)
		return policy.Decision{}, false
	}
	done(err)
	if err != nil {
		c.m.errors.WithLabelValues(opGet).Inc()
		return policy.Decision{}, false
	}
	d, err := decodeDecision(b)
	if err != nil {
		c.m.errors.WithLabelValues(opDecode).Inc()
		return policy.Decision{}, false
	}
	return d, true
}

// Set stores d under k for ttl in the background: it returns at once. A
// write finds a free slot among MaxSets or is skipped.
func (c *Cache) Set(ctx context.Context, k policy.Key, d policy.Decision, ttl time.Duration) {
	if ttl <= 0 || c.closed.Load() {
		return
	}
	select {
	case c.sets <- struct{}{}:
	default:
		c.m.setDropped.Inc()
		return
	}
	c.wg.Add(1)
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sets }()
		c.set(ctx, k, d, ttl)
	}()
}

func (c *Cache) set(ctx context.Context, k policy.Key, d policy.Decision, ttl time.Duration) {
	b, err := encodeDecision(d)
	if err != nil {
		c.m.errors.WithLabelValues(opDecode).Inc()
		return
	}
	done, err := c.br.Allow()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.setTimeout)
	defer cancel()
	start := time.Now()
	err = c.client.Set(ctx, c.Key(k), b, ttl).Err()
	c.setDur.Observe(time.Since(start).Seconds())
	done(err)
	if err != nil {
		c.m.errors.WithLabelValues(opSet).Inc()
	}
}

// Wait returns when the writes in flight have finished.
func (c *Cache) Wait() { c.wg.Wait() }

// Close stops taking writes and waits for those in flight. It does not
// close the client.
func (c *Cache) Close() error {
	c.closed.Store(true)
	c.wg.Wait()
	return nil
}

// encodeDecision is the stored form of d: everything but the fields the
// service sets per evaluation.
func encodeDecision(d policy.Decision) ([]byte, error) {
	d.ID, d.Cached = "", false
	return json.Marshal(d)
}

func decodeDecision(b []byte) (policy.Decision, error) {
	var d policy.Decision
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&d)
	return d, err
}
