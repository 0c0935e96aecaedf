package policy

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// clock is a settable time source for Cache.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ttlShared is an L2 tier that honours the TTL it is given, on its own clock.
type ttlShared struct {
	clock   *clock
	mu      sync.Mutex
	entries map[Key]ttlEntry
}

type ttlEntry struct {
	d       Decision
	expires time.Time
}

func newTTLShared(c *clock) *ttlShared { return &ttlShared{clock: c, entries: map[Key]ttlEntry{}} }

func (s *ttlShared) Get(_ context.Context, k Key) (Decision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[k]
	if !ok || !s.clock.now().Before(e.expires) {
		return Decision{}, false
	}
	return e.d, true
}

func (s *ttlShared) Set(_ context.Context, k Key, d Decision, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[k] = ttlEntry{d, s.clock.now().Add(ttl)}
}

func TestCacheTTL(t *testing.T) {
	key := func(s string) Key { return mustKey(t, "rev", "e", nil, mustInput(t, `{"k": "`+s+`"}`)) }
	tests := []struct {
		name    string
		ttl     time.Duration // passed to Set
		hitAt   time.Duration // still a hit this long after Set
		missAt  time.Duration // gone this long after Set
		cacheTo time.Duration // the cache's own TTL
	}{
		{"entry TTL", time.Millisecond, 999 * time.Microsecond, time.Millisecond, 10 * time.Second},
		{"zero means the cache TTL", 0, 10*time.Second - 1, 10 * time.Second, 10 * time.Second},
		{"negative means the cache TTL", -time.Second, 10*time.Second - 1, 10 * time.Second, 10 * time.Second},
		{"bounded by the cache TTL", time.Hour, 10*time.Second - 1, 10 * time.Second, 10 * time.Second},
		{"default cache TTL is 60s", 0, 59 * time.Second, 60 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			c := NewCache(CacheOptions{TTL: tt.cacheTo}, nil)
			c.now = clk.now
			k := key(tt.name)
			c.Set(t.Context(), k, Decision{Outcome: Allow, Reason: tt.name}, tt.ttl)
			if d, ok := c.Get(t.Context(), k); !ok || d.Reason != tt.name {
				t.Fatalf("fresh entry: %+v, %v", d, ok)
			}
			clk.advance(tt.hitAt)
			if _, ok := c.Get(t.Context(), k); !ok {
				t.Fatalf("expired after %v", tt.hitAt)
			}
			clk.advance(tt.missAt - tt.hitAt)
			if d, ok := c.Get(t.Context(), k); ok {
				t.Fatalf("still served %+v after %v", d, tt.missAt)
			}
			if c.Len() != 0 {
				t.Errorf("expired entry kept: Len %d", c.Len())
			}
		})
	}
}

func TestCacheL2FillsL1WithDecisionTTL(t *testing.T) {
	clk := newClock()
	shared := newTTLShared(clk)
	c := NewCache(CacheOptions{TTL: time.Minute, Shared: shared}, nil)
	c.now = clk.now
	k := mustKey(t, "rev", "e", nil, Input{})
	shared.Set(t.Context(), k, Decision{Outcome: Deny, TTL: 5 * time.Second}, time.Minute)

	if d, ok := c.Get(t.Context(), k); !ok || d.Outcome != Deny {
		t.Fatalf("L2 hit: %+v %v", d, ok)
	}
	if c.Len() != 1 {
		t.Fatalf("L2 hit did not fill L1")
	}
	delete(shared.entries, k)
	clk.advance(4 * time.Second)
	if _, ok := c.Get(t.Context(), k); !ok {
		t.Fatal("L1 lost the entry before the decision's TTL")
	}
	clk.advance(time.Second)
	if _, ok := c.Get(t.Context(), k); ok {
		t.Fatal("L1 kept the entry past the decision's TTL")
	}
}

func TestCacheSizeBound(t *testing.T) {
	m := NewMetrics(nil)
	c := NewCache(CacheOptions{Size: 64}, m)
	for i := range 1000 {
		c.Set(t.Context(), mustKey(t, "rev", "e", []ast.Ref{ast.MustParseRef("input.i")}, mustInput(t, `{"i": `+strconv.Itoa(i)+`}`)), Decision{}, 0)
	}
	if n := c.Len(); n > 64 || n < 16 {
		t.Errorf("Len %d after 1000 inserts with Size 64", n)
	}
	if got := counterValue(m.cacheEvictions); got != float64(1000-c.Len()) {
		t.Errorf("evictions %v, want %d", got, 1000-c.Len())
	}
	c.Purge()
	if c.Len() != 0 {
		t.Errorf("Len %d after Purge", c.Len())
	}
}

const ttlPolicy = `package svc

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
#     cache_ttl: 1ms
short := input.user == "alice"

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
#     cache_ttl: 1m
decided := {"allowed": true, "ttl": "5s"}

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
#     cache_ttl: 2s
capped := {"allowed": true, "ttl": 30}
`

func newTestService(t *testing.T, opts Options, src string) *Service {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = time.Minute // semantics, not speed: -race on a busy machine is slow
	}
	s := NewService(opts)
	b, err := NewBundle("test", map[string][]byte{"/svc/p.rego": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceCacheTTL(t *testing.T) {
	tests := []struct {
		entry       string
		hitAt, gone time.Duration
	}{
		{"svc/short", 999 * time.Microsecond, time.Millisecond}, // cache_ttl
		{"svc/decided", 5*time.Second - 1, 5 * time.Second},     // the decision's ttl is shorter
		{"svc/capped", 2*time.Second - 1, 2 * time.Second},      // cache_ttl is shorter
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			clk := newClock()
			s := newTestService(t, Options{}, ttlPolicy)
			s.cache.now = clk.now
			in := mustInput(t, `{"user": "alice"}`)
			decide := func() Decision {
				t.Helper()
				d, err := s.Decide(t.Context(), tt.entry, in)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			if decide().Cached {
				t.Fatal("first decision cached")
			}
			if !decide().Cached {
				t.Fatal("second decision not cached")
			}
			clk.advance(tt.hitAt)
			if !decide().Cached {
				t.Fatalf("expired after %v", tt.hitAt)
			}
			clk.advance(tt.gone - tt.hitAt)
			if decide().Cached {
				t.Fatalf("still cached after %v", tt.gone)
			}
		})
	}
}

// An entry point's cache_ttl bounds an entry that L1 took from L2 as much as
// one it evaluated itself: a replica must not keep, for the cache's whole
// TTL, a decision its policy said to keep for one second.
func TestServiceCacheTTLThroughL2(t *testing.T) {
	clk := newClock()
	shared := newTTLShared(clk)
	src := strings.Replace(ttlPolicy, "cache_ttl: 1ms", "cache_ttl: 1s", 1)
	a := newTestService(t, Options{Cache: CacheOptions{Shared: shared}}, src)
	b := newTestService(t, Options{Cache: CacheOptions{Shared: shared}}, src)
	a.cache.now, b.cache.now = clk.now, clk.now
	in := mustInput(t, `{"user": "alice"}`)

	if d, err := a.Decide(t.Context(), "svc/short", in); err != nil || d.Cached {
		t.Fatalf("replica a: %+v, %v", d, err)
	}
	clk.advance(500 * time.Millisecond)
	if d, err := b.Decide(t.Context(), "svc/short", in); err != nil || !d.Cached {
		t.Fatalf("replica b, from L2: %+v, %v", d, err)
	}
	clk.advance(time.Second)
	if d, err := b.Decide(t.Context(), "svc/short", in); err != nil || d.Cached {
		t.Fatalf("replica b served a decision %v after it was cached under cache_ttl 1s: %+v, %v",
			1500*time.Millisecond, d, err)
	}
}

func mustInput(t testing.TB, doc string) Input {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	in, err := NewInput(v)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func mustKey(t testing.TB, revision, entry string, paths []ast.Ref, in Input) Key {
	t.Helper()
	k, err := cacheKey(revision, entry, paths, in)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
