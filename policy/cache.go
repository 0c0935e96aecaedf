package policy

import (
	"context"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// SharedCache is a second cache tier shared between replicas (Redis). An
// implementation must treat every error as a miss and bound its own latency:
// the decision path never fails because of it.
type SharedCache interface {
	Get(ctx context.Context, key Key) (Decision, bool)
	Set(ctx context.Context, key Key, d Decision, ttl time.Duration)
}

// CacheOptions bound the decision cache. Zero values mean defaults.
type CacheOptions struct {
	// Disabled turns the cache off: every decision is evaluated.
	Disabled bool
	// Size is the most entries kept in process (default 100,000).
	Size int
	// TTL is the longest an entry lives (default 60 s). An entry point's
	// cache_ttl and a decision's ttl can only shorten it.
	TTL time.Duration
	// Shared is the optional L2 tier.
	Shared SharedCache
}

const cacheShards = 16

// Cache is the in-process (L1) decision cache: a sharded LRU bounded by size,
// with a TTL checked on read, in front of an optional [SharedCache]. Only
// decisions are stored: never errors, never undefined results.
type Cache struct {
	shards  [cacheShards]*lru.Cache[Key, cacheEntry]
	ttl     time.Duration
	shared  SharedCache
	metrics *Metrics
	now     func() time.Time
}

type cacheEntry struct {
	d       Decision
	expires int64 // unix nanoseconds
}

// NewCache builds a cache, or returns nil when opts.Disabled.
func NewCache(opts CacheOptions, m *Metrics) *Cache {
	if opts.Disabled {
		return nil
	}
	if opts.Size <= 0 {
		opts.Size = 100_000
	}
	if opts.TTL <= 0 {
		opts.TTL = 60 * time.Second
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	c := &Cache{ttl: opts.TTL, shared: opts.Shared, metrics: m, now: time.Now}
	per := max(opts.Size/cacheShards, 1)
	for i := range c.shards {
		shard, err := lru.NewWithEvict(per, func(Key, cacheEntry) { m.cacheEvictions.Inc() })
		if err != nil {
			panic(err) // only for a non-positive size, excluded above
		}
		c.shards[i] = shard
	}
	return c
}

func (c *Cache) shard(k Key) *lru.Cache[Key, cacheEntry] { return c.shards[k[0]%cacheShards] }

// Get returns the cached decision for k, from L1 or else L2.
func (c *Cache) Get(ctx context.Context, k Key) (Decision, bool) { return c.get(ctx, k, 0) }

// get is Get where an L2 hit is kept in L1 for at most maxTTL (when
// positive): the entry point's cache_ttl, which L2 does not report back.
func (c *Cache) get(ctx context.Context, k Key, maxTTL time.Duration) (Decision, bool) {
	now := c.now().UnixNano()
	if e, ok := c.shard(k).Get(k); ok {
		if now < e.expires {
			c.metrics.cacheHitsL1.Inc()
			return e.d, true
		}
		c.shard(k).Remove(k)
	}
	c.metrics.cacheMissesL1.Inc()
	if c.shared == nil {
		return Decision{}, false
	}
	d, ok := c.shared.Get(ctx, k)
	if !ok {
		c.metrics.cacheMissesL2.Inc()
		return Decision{}, false
	}
	c.metrics.cacheHitsL2.Inc()
	ttl := c.ttl
	if d.TTL > 0 && d.TTL < ttl {
		ttl = d.TTL
	}
	if maxTTL > 0 && maxTTL < ttl {
		ttl = maxTTL
	}
	c.shard(k).Add(k, cacheEntry{d: d, expires: now + int64(ttl)})
	return d, true
}

// Set stores d under k for at most ttl (bounded by the cache's TTL).
func (c *Cache) Set(ctx context.Context, k Key, d Decision, ttl time.Duration) {
	if ttl <= 0 || ttl > c.ttl {
		ttl = c.ttl
	}
	c.shard(k).Add(k, cacheEntry{d: d, expires: c.now().Add(ttl).UnixNano()})
	if c.shared != nil {
		c.shared.Set(ctx, k, d, ttl)
	}
}

// Len is the number of entries in process.
func (c *Cache) Len() int {
	n := 0
	for _, s := range c.shards {
		n += s.Len()
	}
	return n
}

// Purge drops every in-process entry (after a bundle activation, entries of
// the old revision can never be hit again; purging frees their memory).
func (c *Cache) Purge() {
	for _, s := range c.shards {
		s.Purge()
	}
}
