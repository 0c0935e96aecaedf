package redisstore

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/breaker"
)

func key(s string) policy.Key {
	var k policy.Key
	copy(k[:], s)
	return k
}

// fullDecision sets every field of a decision, with values shaped as a
// policy's result is (json.Number for numbers, nested objects and arrays).
func fullDecision() policy.Decision {
	return policy.Decision{
		Outcome:                 policy.Ask,
		Reason:                  "writes outside the repo need a human",
		AgentReason:             "ask the user before writing to /etc",
		RuleIDs:                 []string{"fs.write.outside", "fs.etc"},
		HTTPStatus:              403,
		Body:                    `{"error":"denied"}`,
		Headers:                 []policy.Header{{Name: "x-gavel", Value: "1"}, {Name: "x-gavel", Value: "2"}},
		ResponseHeadersToAdd:    []policy.Header{{Name: "x-policy", Value: "fs"}},
		RequestHeadersToRemove:  []string{"authorization"},
		QueryParametersToSet:    []policy.Header{{Name: "tenant", Value: "acme"}},
		QueryParametersToRemove: []string{"debug"},
		DynamicMetadata:         map[string]any{"score": json.Number("0.75"), "tags": []any{"a", true, nil}},
		UpdatedInput:            map[string]any{"command": "ls -la", "timeout": json.Number("30")},
		Fields: map[string]any{
			"decision":           "ask",
			"reason":             "writes outside the repo need a human",
			"hookSpecificOutput": map[string]any{"permissionDecision": "ask", "nested": map[string]any{"n": json.Number("1.0")}},
			"big":                json.Number("12345678901234567890"),
			"negzero":            json.Number("-0"),
			"empty":              map[string]any{},
			"list":               []any{json.Number("1"), "two", false},
		},
		TTL:       1500 * time.Millisecond,
		Entry:     "claude/pretooluse",
		Revision:  "sha256:abc",
		ID:        "per-evaluation",
		DryRun:    true,
		Cached:    true,
		Redaction: policy.NewRedaction([]ast.Ref{ast.MustParseRef("input.hook.prompt")}),
	}
}

func TestCacheRoundTripsEveryField(t *testing.T) {
	requireRedis(t)
	d := fullDecision()
	// Every field must be set here, so that a field added to Decision is
	// either round-tripped or consciously left out.
	v := reflect.ValueOf(d)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("fullDecision leaves %s unset", v.Type().Field(i).Name)
		}
	}
	client := newClient(t, redisAddr())
	c := NewCache(client, CacheOptions{Prefix: uniq(t), GetTimeout: time.Second})
	k := key("round trip")
	c.Set(t.Context(), k, d, time.Minute)
	c.Wait()
	got, ok := c.Get(t.Context(), k)
	if !ok {
		t.Fatal("miss after Set")
	}
	want := d
	want.ID, want.Cached, want.Redaction = "", false, policy.Redaction{} // set per evaluation by the service
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
	}
	ttl, err := client.PTTL(t.Context(), c.Key(k)).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL %v, %v; want in (0, 1m]", ttl, err)
	}
}

func TestCacheMissesAndExpiry(t *testing.T) {
	requireRedis(t)
	client := newClient(t, redisAddr())
	prefix := uniq(t)
	c := NewCache(client, CacheOptions{Prefix: prefix, GetTimeout: time.Second})
	ctx := t.Context()
	if _, ok := c.Get(ctx, key("absent")); ok {
		t.Fatal("hit for a key never set")
	}
	if got := c.Key(key("absent")); got[:len(prefix)] != prefix || len(got) != len(prefix)+64 {
		t.Fatalf("key %q: want the prefix and 64 hex digits", got)
	}
	c.Set(ctx, key("short"), policy.Decision{Outcome: policy.Allow}, 100*time.Millisecond)
	c.Set(ctx, key("none"), policy.Decision{Outcome: policy.Allow}, 0) // no TTL: not stored
	c.Wait()
	if d, ok := c.Get(ctx, key("short")); !ok || d.Outcome != policy.Allow {
		t.Fatalf("Get after Set: %v, %v", d, ok)
	}
	if _, ok := c.Get(ctx, key("none")); ok {
		t.Fatal("a decision set without a TTL was stored")
	}
	eventually(t, "the entry to expire", func() bool {
		_, ok := c.Get(ctx, key("short"))
		return !ok
	})
	if got := testutil.ToFloat64(c.m.errors.WithLabelValues(opGet)); got != 0 {
		t.Fatalf("misses counted as errors: %v", got)
	}
	// A value that is not a decision is a miss, counted.
	if err := client.Set(ctx, c.Key(key("junk")), "not json", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(ctx, key("junk")); ok {
		t.Fatal("garbage decoded as a hit")
	}
	if got := testutil.ToFloat64(c.m.errors.WithLabelValues(opDecode)); got != 1 {
		t.Fatalf("decode errors %v, want 1", got)
	}
	// A lookup whose caller already gave up does not go out.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := c.Get(cctx, key("short")); ok {
		t.Fatal("hit on a cancelled context")
	}
}

func TestCacheSetsAreBounded(t *testing.T) {
	requireRedis(t)
	c := NewCache(newClient(t, redisAddr()), CacheOptions{Prefix: uniq(t), MaxSets: 2, GetTimeout: time.Second})
	c.sets <- struct{}{} // two writes in flight
	c.sets <- struct{}{}
	c.Set(t.Context(), key("k"), policy.Decision{}, time.Minute)
	c.Wait()
	if got := testutil.ToFloat64(c.m.setDropped); got != 1 {
		t.Fatalf("dropped %v, want 1", got)
	}
	if _, ok := c.Get(t.Context(), key("k")); ok {
		t.Fatal("a write beyond MaxSets was stored")
	}
	<-c.sets
	c.Set(t.Context(), key("k"), policy.Decision{}, time.Minute)
	c.Wait()
	if _, ok := c.Get(t.Context(), key("k")); !ok {
		t.Fatal("a write with a free slot was not stored")
	}
}

const sharedPolicy = `package shared

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
allow := {
	"decision": "deny",
	"reason": sprintf("%s may not", [input.user]),
	"rule_ids": ["shared.deny"],
	"http_status": 403,
	"hookSpecificOutput": {"permissionDecision": "deny", "weight": 1.5},
}
`

func newService(t *testing.T, shared policy.SharedCache) (*policy.Service, *prometheus.Registry) {
	t.Helper()
	b, err := policy.NewBundle(t.Name(), map[string][]byte{
		"/.manifest":          []byte(`{"roots": [""], "rego_version": 1}`),
		"/shared/policy.rego": []byte(sharedPolicy),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc := policy.NewService(policy.Options{
		Cache:       policy.CacheOptions{Shared: shared},
		Metrics:     policy.NewMetrics(reg),
		Logger:      slog.New(slog.DiscardHandler),
		EvalTimeout: time.Minute,
	})
	if _, err := svc.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return svc, reg
}

func cacheHits(t *testing.T, reg *prometheus.Registry, tier string) float64 {
	t.Helper()
	return gauge(t, reg, "gavel_decision_cache_hits_total", "tier", tier)
}

func TestServicesShareTheL2(t *testing.T) {
	requireRedis(t)
	prefix := uniq(t)
	cacheA := NewCache(newClient(t, redisAddr()), CacheOptions{Prefix: prefix, GetTimeout: time.Second})
	cacheB := NewCache(newClient(t, redisAddr()), CacheOptions{Prefix: prefix, GetTimeout: time.Second})
	a, _ := newService(t, cacheA)
	b, regB := newService(t, cacheB)
	in, err := policy.NewInput(map[string]any{"user": "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	da, err := a.Decide(ctx, "shared/allow", in)
	if err != nil || da.Cached {
		t.Fatalf("first decision on A: %+v, %v; want evaluated", da, err)
	}
	cacheA.Wait()
	db, err := b.Decide(ctx, "shared/allow", in)
	if err != nil {
		t.Fatal(err)
	}
	if !db.Cached {
		t.Fatal("B evaluated a decision A had cached in Redis")
	}
	if got := cacheHits(t, regB, "l2"); got != 1 {
		t.Fatalf("B's l2 hits %v, want 1", got)
	}
	if db.ID == "" || db.ID == da.ID {
		t.Fatalf("B's decision id %q: want a fresh one (A's %q)", db.ID, da.ID)
	}
	want, got := da, db
	want.ID, want.Cached, got.ID, got.Cached = "", false, "", false
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decision from the L2 differs:\n got %#v\nwant %#v", got, want)
	}
	if w := got.Fields["hookSpecificOutput"].(map[string]any)["weight"]; w != json.Number("1.5") {
		t.Fatalf("Fields number came back as %#v, want json.Number 1.5", w)
	}
	// Now it is in B's L1 too.
	if _, err := b.Decide(ctx, "shared/allow", in); err != nil {
		t.Fatal(err)
	}
	if got := cacheHits(t, regB, "l1"); got != 1 {
		t.Fatalf("B's l1 hits %v, want 1", got)
	}
}

func TestCacheWhenRedisIsDown(t *testing.T) {
	requireRedis(t)
	p := newProxy(t, redisAddr())
	breg := prometheus.NewRegistry()
	bm := breaker.NewMetrics(breg)
	var mu sync.Mutex
	var changes []string
	br := breaker.New("redis", breaker.Options{OpenTimeout: 300 * time.Millisecond, Metrics: bm})
	br.OnChange(func(_ string, from, to breaker.State) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, from.String()+"->"+to.String())
	})
	const timeout = 20 * time.Millisecond
	c := NewCache(newClient(t, p.Addr()), CacheOptions{Prefix: uniq(t), GetTimeout: timeout, Breaker: br})
	svc, _ := newService(t, c)
	ctx := t.Context()
	k := key("warm")
	c.Set(ctx, k, policy.Decision{Outcome: policy.Allow}, time.Minute)
	c.Wait()
	if _, ok := c.Get(ctx, k); !ok {
		t.Fatal("no hit through the proxy before the cut")
	}

	p.Cut()
	for i := range 5 {
		start := time.Now()
		if _, ok := c.Get(ctx, k); ok {
			t.Fatalf("get %d: hit with Redis cut", i)
		}
		if d := time.Since(start); d > timeout+100*time.Millisecond {
			t.Fatalf("get %d took %s, want about %s at most", i, d, timeout)
		}
	}
	if got := testutil.ToFloat64(c.m.errors.WithLabelValues(opGet)); got != 5 {
		t.Fatalf("get errors %v, want 5", got)
	}
	if s := br.State(); s != breaker.Open {
		t.Fatalf("breaker %s after 5 failures, want open", s)
	}
	if got := gauge(t, breg, "gavel_circuit_breaker_state", "name", "redis"); got != 2 {
		t.Fatalf("gavel_circuit_breaker_state %v, want 2", got)
	}
	// Open: misses at once, without a connection attempt or an error.
	before := p.accepted.Load()
	for range 20 {
		if _, ok := c.Get(ctx, k); ok {
			t.Fatal("hit while open")
		}
	}
	if p.accepted.Load() != before {
		t.Fatal("the open breaker let lookups reach the network")
	}
	if got := testutil.ToFloat64(c.m.errors.WithLabelValues(opGet)); got != 5 {
		t.Fatalf("get errors %v while open, want still 5", got)
	}
	// Decisions go on, evaluated.
	for _, user := range []string{"a", "b", "c", "d", "e", "f"} {
		in, _ := policy.NewInput(map[string]any{"user": user})
		d, err := svc.Decide(ctx, "shared/allow", in)
		if err != nil || d.Outcome != policy.Deny {
			t.Fatalf("decision with Redis down: %+v, %v", d, err)
		}
	}

	p.Restore()
	eventually(t, "the breaker to close after Redis is back", func() bool {
		c.Get(ctx, k)
		return br.State() == breaker.Closed
	})
	if _, ok := c.Get(ctx, k); !ok {
		t.Fatal("no hit after Redis came back")
	}
	if got := gauge(t, breg, "gavel_circuit_breaker_state", "name", "redis"); got != 0 {
		t.Fatalf("gavel_circuit_breaker_state %v after recovery, want 0", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) < 3 || changes[0] != "closed->open" || changes[len(changes)-1] != "half-open->closed" {
		t.Fatalf("breaker changes %v", changes)
	}
}

// gauge reads the value of metric name{label="value"} from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetGauge() != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
