package policy_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/client_golang/prometheus"
)

const servicePolicy = `package svc

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
allow := {"allowed": input.user == "alice", "reason": sprintf("user %v", [input.user])}

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.a, input.b]
conflict := {"allowed": x == 1}

x := 1 if input.a
x := 2 if input.b

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
maybe if input.user == "alice"

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
#     dry_run: true
dry := input.user == "alice"

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.n]
slow if {
	count([1 |
		some i in numbers.range(1, input.n)
		some j in numbers.range(1, input.n)
		i * j == -1
	]) == 0
}

# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
clock := {"allowed": true, "reason": sprintf("%d", [time.now_ns()])}
`

// sharedCache is an in-memory L2 tier that counts its calls.
type sharedCache struct {
	mu               sync.Mutex
	entries          map[policy.Key]policy.Decision
	gets, hits, sets int
}

func newSharedCache() *sharedCache {
	return &sharedCache{entries: map[policy.Key]policy.Decision{}}
}

func (c *sharedCache) Get(_ context.Context, k policy.Key) (policy.Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	d, ok := c.entries[k]
	if ok {
		c.hits++
	}
	return d, ok
}

func (c *sharedCache) Set(_ context.Context, k policy.Key, d policy.Decision, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sets++
	c.entries[k] = d
}

func (c *sharedCache) counts() (gets, hits, sets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets, c.hits, c.sets
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newService(t testing.TB, opts policy.Options, files map[string]string) (*policy.Service, *policy.Engine) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = time.Minute // semantics, not speed: -race on a busy machine is slow
	}
	s := policy.NewService(opts)
	e, err := s.Activate(t.Context(), newBundle(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return s, e
}

func TestDecideWithoutBundle(t *testing.T) {
	s := policy.NewService(policy.Options{Logger: quietLogger()})
	if s.Engine() != nil || s.Revision() != "" {
		t.Fatal("a new service has an engine")
	}
	_, err := s.Decide(t.Context(), "svc/allow", input(t, `{"user": "alice"}`))
	if !errors.Is(err, policy.ErrNoActiveBundle) {
		t.Fatalf("error %v, want ErrNoActiveBundle", err)
	}
	if got := policy.ReasonCode(err); got != policy.ReasonNoBundle {
		t.Errorf("ReasonCode = %q", got)
	}
}

func TestActivateKeepsLastGood(t *testing.T) {
	s, good := newService(t, policy.Options{}, map[string]string{"/svc/p.rego": servicePolicy})
	alice := input(t, `{"user": "alice"}`)
	if _, err := s.Decide(t.Context(), "svc/allow", alice); err != nil {
		t.Fatal(err)
	}
	bad := []map[string]string{
		{"/svc/p.rego": "package svc\n\nallow if {\n"},
		{"/svc/p.rego": servicePolicy, "/.manifest": `{"roots": ["other"]}`},
		{"/svc/p.rego": strings.Replace(servicePolicy, "cache_key: [input.user]", "cache_key: [data.user]", 1)},
	}
	for _, files := range bad {
		b := newBundle(t, files)
		e, err := s.Activate(t.Context(), b)
		var ce *policy.CompileError
		if !errors.As(err, &ce) || e != nil {
			t.Fatalf("Activate of a bad bundle: %v, %v", e, err)
		}
		if s.Revision() != good.Revision() || s.Engine() != good {
			t.Fatalf("serving %s after a rejected bundle, want %s", s.Revision(), good.Revision())
		}
		d, err := s.Decide(t.Context(), "svc/allow", alice)
		if err != nil || !d.Allowed() || d.Revision != good.Revision() {
			t.Fatalf("after a rejected bundle: %+v, %v", d, err)
		}
	}
}

func TestDecide(t *testing.T) {
	shared := newSharedCache()
	s, e := newService(t, policy.Options{Cache: policy.CacheOptions{Shared: shared}}, map[string]string{"/svc/p.rego": servicePolicy})
	alice := input(t, `{"user": "alice", "ignored": 1}`)
	aliceAgain := input(t, `{"ignored": 2, "user": "alice"}`)

	first, err := s.Decide(t.Context(), "svc/allow", alice)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Decide(t.Context(), "data.svc.allow", aliceAgain)
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached || !second.Cached {
		t.Errorf("Cached = %v then %v, want false then true", first.Cached, second.Cached)
	}
	for _, d := range []policy.Decision{first, second} {
		if d.ID == "" || d.Revision != e.Revision() || d.Entry != "svc/allow" || !d.Allowed() || d.Reason != "user alice" {
			t.Errorf("decision %+v", d)
		}
	}
	if first.ID == second.ID {
		t.Error("two decisions share an ID")
	}
	if _, _, sets := shared.counts(); sets != 1 {
		t.Errorf("L2 Set %d times, want 1", sets)
	}

	ids := map[string]bool{}
	for range 50 {
		d, err := s.Decide(t.Context(), "svc/allow", alice)
		if err != nil || !d.Cached {
			t.Fatalf("%+v, %v", d, err)
		}
		if ids[d.ID] {
			t.Fatalf("ID %s repeated", d.ID)
		}
		ids[d.ID] = true
	}

	bob, err := s.Decide(t.Context(), "svc/allow", input(t, `{"user": "bob"}`))
	if err != nil || bob.Cached || bob.Allowed() || bob.Reason != "user bob" {
		t.Errorf("a different key value was answered from the cache: %+v, %v", bob, err)
	}
}

func TestErrorsAreNeverCached(t *testing.T) {
	shared := newSharedCache()
	s, _ := newService(t, policy.Options{Cache: policy.CacheOptions{Shared: shared}}, map[string]string{"/svc/p.rego": servicePolicy})
	tests := []struct {
		name, entry, input, code, msg string
	}{
		{"conflict", "svc/conflict", `{"a": true, "b": true}`, policy.ReasonEvalError, "eval_conflict_error"},
		{"undefined", "svc/maybe", `{"user": "bob"}`, policy.ReasonUndefined, "undefined decision at svc/maybe"},
		{"unknown entry point", "svc/nothing", `{"user": "bob"}`, policy.ReasonUnknownEntry, "svc/nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 3 {
				d, err := s.Decide(t.Context(), tt.entry, input(t, tt.input))
				if err == nil {
					t.Fatalf("call %d: got %+v, want an error", i, d)
				}
				if got := policy.ReasonCode(err); got != tt.code {
					t.Fatalf("call %d: ReasonCode %q (%v), want %q", i, got, err, tt.code)
				}
				wantErr(t, err, tt.msg)
				if d.Cached || d.ID != "" || d.Revision != s.Revision() {
					t.Errorf("failed decision %+v", d)
				}
			}
			if _, _, sets := shared.counts(); sets != 0 {
				t.Errorf("L2 Set %d times for a failing decision", sets)
			}
		})
	}
	// The same entry points cache their successful decisions.
	for _, c := range []struct{ entry, input string }{{"svc/conflict", `{"a": true}`}, {"svc/maybe", `{"user": "alice"}`}} {
		for i := range 2 {
			d, err := s.Decide(t.Context(), c.entry, input(t, c.input))
			if err != nil || d.Cached != (i == 1) {
				t.Fatalf("%s call %d: %+v, %v", c.entry, i, d, err)
			}
		}
	}
	if _, _, sets := shared.counts(); sets != 2 {
		t.Errorf("L2 Set %d times, want 2", sets)
	}
}

func TestNotCacheableBypassesCache(t *testing.T) {
	shared := newSharedCache()
	s, e := newService(t, policy.Options{Cache: policy.CacheOptions{Shared: shared}}, map[string]string{"/svc/p.rego": servicePolicy})
	ep, err := e.EntryPoint(t.Context(), "svc/clock")
	if err != nil || ep.Cacheable() {
		t.Fatalf("svc/clock must not be cacheable: %v %v", ep, err)
	}
	for range 3 {
		d, err := s.Decide(t.Context(), "svc/clock", input(t, `{"user": "alice"}`))
		if err != nil || d.Cached {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if gets, _, sets := shared.counts(); gets+sets != 0 {
		t.Errorf("a not-cacheable entry point touched L2: %d gets, %d sets", gets, sets)
	}
}

func TestDryRun(t *testing.T) {
	s, e := newService(t, policy.Options{DryRun: []string{"data.svc.allow"}}, map[string]string{"/svc/p.rego": servicePolicy})
	tests := []struct {
		entry string
		want  bool
	}{
		{"svc/allow", true}, // from Options.DryRun
		{"svc/dry", true},   // from METADATA
		{"svc/maybe", false},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			for i := range 2 { // evaluated, then cached
				d, err := s.Decide(t.Context(), tt.entry, input(t, `{"user": "alice"}`))
				if err != nil {
					t.Fatal(err)
				}
				if d.DryRun != tt.want || d.Cached != (i == 1) {
					t.Errorf("call %d: DryRun %v Cached %v, want %v %v", i, d.DryRun, d.Cached, tt.want, i == 1)
				}
			}
		})
	}
	// The engine knows only what the bundle declares.
	d, err := e.Eval(t.Context(), "svc/allow", input(t, `{"user": "alice"}`))
	if err != nil || d.DryRun {
		t.Errorf("Engine.Eval: %+v, %v", d, err)
	}
}

// A dry-run entry point stays a dry run when its decision fails, so the
// caller can let the action through.
func TestDryRunErrors(t *testing.T) {
	dryErr := servicePolicy + `
# METADATA
# entrypoint: true
# custom:
#   gavel:
#     cache_key: [input.user]
#     dry_run: true
dry_maybe if input.user == "alice"
`
	opts := policy.Options{DryRun: []string{"data.svc.maybe", "svc/nothing"}, Logger: quietLogger()}
	idle := policy.NewService(opts)
	s, _ := newService(t, opts, map[string]string{"/svc/p.rego": dryErr})
	bob := input(t, `{"user": "bob"}`)
	tests := []struct {
		name  string
		s     *policy.Service
		entry string
		code  string
		want  bool
	}{
		{"no bundle, from Options", idle, "svc/maybe", policy.ReasonNoBundle, true},
		{"no bundle, data. form", idle, "data.svc.maybe", policy.ReasonNoBundle, true},
		{"no bundle, not dry", idle, "svc/allow", policy.ReasonNoBundle, false},
		{"unknown entry point, from Options", s, "svc/nothing", policy.ReasonUnknownEntry, true},
		{"unknown entry point, data. form", s, "data.svc.nothing", policy.ReasonUnknownEntry, true},
		{"undefined, from Options", s, "svc/maybe", policy.ReasonUndefined, true},
		{"undefined, data. form", s, "data.svc.maybe", policy.ReasonUndefined, true},
		{"undefined, from METADATA", s, "svc/dry_maybe", policy.ReasonUndefined, true},
		{"conflict, not dry", s, "svc/conflict", policy.ReasonEvalError, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := bob
			if tt.entry == "svc/conflict" {
				in = input(t, `{"a": true, "b": true}`)
			}
			d, err := tt.s.Decide(t.Context(), tt.entry, in)
			if got := policy.ReasonCode(err); got != tt.code {
				t.Fatalf("ReasonCode %q (%v), want %q", got, err, tt.code)
			}
			if d.DryRun != tt.want {
				t.Errorf("DryRun = %v, want %v (decision %+v)", d.DryRun, tt.want, d)
			}
		})
	}
}

func TestDecideDeadline(t *testing.T) {
	s, _ := newService(t, policy.Options{}, map[string]string{"/svc/p.rego": servicePolicy})
	// A quick input first: the entry point works.
	if d, err := s.Decide(t.Context(), "svc/slow", input(t, `{"n": 10}`)); err != nil || !d.Allowed() {
		t.Fatalf("%+v, %v", d, err)
	}
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		is   error
		code string
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), time.Millisecond)
		}, context.DeadlineExceeded, policy.ReasonTimeout},
		{"deadline during evaluation", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 20*time.Millisecond)
		}, context.DeadlineExceeded, policy.ReasonTimeout},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx, cancel
		}, context.Canceled, policy.ReasonCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			// 9 million iterations: seconds of work, if the deadline did not stop it.
			_, err := s.Decide(ctx, "svc/slow", input(t, `{"n": 3000}`))
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			if got := policy.ReasonCode(err); got != tt.code {
				t.Errorf("ReasonCode = %q, want %q", got, tt.code)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("evaluation ran %v past its deadline", el)
			}
		})
	}
}

func TestSharedCacheFillsL1(t *testing.T) {
	shared := newSharedCache()
	files := map[string]string{"/svc/p.rego": servicePolicy}
	a, _ := newService(t, policy.Options{Cache: policy.CacheOptions{Shared: shared}}, files)
	b, _ := newService(t, policy.Options{Cache: policy.CacheOptions{Shared: shared}}, files)
	alice := input(t, `{"user": "alice"}`)

	// Replica a evaluates and writes both tiers.
	d, err := a.Decide(t.Context(), "svc/allow", alice)
	if err != nil || d.Cached {
		t.Fatalf("%+v, %v", d, err)
	}
	if gets, hits, sets := shared.counts(); gets != 1 || hits != 0 || sets != 1 {
		t.Fatalf("after a miss: L2 gets=%d hits=%d sets=%d, want 1 0 1", gets, hits, sets)
	}
	// Replica b misses L1, hits L2, and fills its L1 from it.
	d, err = b.Decide(t.Context(), "svc/allow", alice)
	if err != nil || !d.Cached || !d.Allowed() || d.Reason != "user alice" {
		t.Fatalf("L2 hit: %+v, %v", d, err)
	}
	if gets, hits, sets := shared.counts(); gets != 2 || hits != 1 || sets != 1 {
		t.Fatalf("after an L2 hit: L2 gets=%d hits=%d sets=%d, want 2 1 1", gets, hits, sets)
	}
	// Now b answers from L1 without asking L2 again.
	for range 3 {
		if d, err := b.Decide(t.Context(), "svc/allow", alice); err != nil || !d.Cached {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if gets, hits, sets := shared.counts(); gets != 2 || hits != 1 || sets != 1 {
		t.Fatalf("L1 hits reached L2: gets=%d hits=%d sets=%d", gets, hits, sets)
	}
}

func TestCacheDisabled(t *testing.T) {
	shared := newSharedCache()
	s, _ := newService(t, policy.Options{Cache: policy.CacheOptions{Disabled: true, Shared: shared}}, map[string]string{"/svc/p.rego": servicePolicy})
	for range 3 {
		d, err := s.Decide(t.Context(), "svc/allow", input(t, `{"user": "alice"}`))
		if err != nil || d.Cached || d.ID == "" {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if gets, _, sets := shared.counts(); gets+sets != 0 {
		t.Errorf("a disabled cache used L2: %d gets, %d sets", gets, sets)
	}
	if policy.NewCache(policy.CacheOptions{Disabled: true}, nil) != nil {
		t.Error("NewCache of a disabled cache is not nil")
	}
}

func TestActivateNewRevision(t *testing.T) {
	shared := newSharedCache()
	s, v1 := newService(t, policy.Options{Cache: policy.CacheOptions{Shared: shared}}, map[string]string{"/svc/p.rego": servicePolicy})
	alice := input(t, `{"user": "alice"}`)
	for range 2 {
		if _, err := s.Decide(t.Context(), "svc/allow", alice); err != nil {
			t.Fatal(err)
		}
	}
	v2src := strings.Replace(servicePolicy, `input.user == "alice"`, `input.user == "bob"`, 1)
	v2, err := s.Activate(t.Context(), newBundle(t, map[string]string{"/svc/p.rego": v2src}))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Revision() == v1.Revision() || s.Revision() != v2.Revision() {
		t.Fatalf("revisions %s -> %s, serving %s", v1.Revision(), v2.Revision(), s.Revision())
	}
	// Neither L1 nor L2 may answer with the old revision's decision.
	d, err := s.Decide(t.Context(), "svc/allow", alice)
	if err != nil || d.Cached || d.Allowed() || d.Revision != v2.Revision() {
		t.Fatalf("after activation: %+v, %v", d, err)
	}
	// Rolling back to v1 may reuse what L2 holds for v1: it is v1's answer.
	if _, err := s.Activate(t.Context(), newBundle(t, map[string]string{"/svc/p.rego": servicePolicy})); err != nil {
		t.Fatal(err)
	}
	d, err = s.Decide(t.Context(), "svc/allow", alice)
	if err != nil || !d.Cached || !d.Allowed() || d.Revision != v1.Revision() {
		t.Fatalf("after rollback: %+v, %v", d, err)
	}
}

func TestServiceMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, e := newService(t, policy.Options{Metrics: policy.NewMetrics(reg)}, map[string]string{"/svc/p.rego": servicePolicy})
	alice := input(t, `{"user": "alice"}`)
	for range 3 {
		if _, err := s.Decide(t.Context(), "svc/allow", alice); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = s.Decide(t.Context(), "svc/maybe", input(t, `{"user": "bob"}`))
	_, _ = s.Decide(t.Context(), "svc/clock", alice)
	_, _ = s.Activate(t.Context(), newBundle(t, map[string]string{"/svc/p.rego": "package svc\n\nallow if {\n"}))

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gavel_decision_cache_hits_total", map[string]string{"tier": "l1"}, 2},
		{"gavel_decision_cache_misses_total", map[string]string{"tier": "l1"}, 2}, // allow once, maybe once
		{"gavel_decision_cache_bypass_total", nil, 1},
		{"gavel_decision_cache_hit_ratio", nil, 0.5},
		{"gavel_policy_eval_errors_total", map[string]string{"code": policy.ReasonUndefined}, 1},
		{"gavel_policy_bundle_activations_total", map[string]string{"result": "ok"}, 1},
		{"gavel_policy_bundle_activations_total", map[string]string{"result": "rejected"}, 1},
		{"gavel_policy_bundle_info", map[string]string{"revision": e.Revision(), "source": e.Source()}, 1},
		{"gavel_policy_entrypoint_cacheable", map[string]string{"entry": "svc/allow"}, 1},
		{"gavel_policy_entrypoint_cacheable", map[string]string{"entry": "svc/clock"}, 0},
		{"gavel_policy_eval_duration_seconds", nil, 3}, // sample count: evaluations, not hits
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := metricValue(families, tt.name, tt.labels)
			if !ok {
				t.Fatalf("no %s%v", tt.name, tt.labels)
			}
			if got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
			}
		})
	}
}

// brokenDocument is an input document that cannot be read: whole, by path,
// or both.
type brokenDocument struct{ value, find bool }

func (d brokenDocument) Value() (ast.Value, error) {
	if d.value {
		return nil, errors.New("body is not JSON")
	}
	return ast.MustParseTerm(`{"user": "alice"}`).Value, nil
}

func (d brokenDocument) Find(path ast.Ref) (ast.Value, bool, error) {
	if d.find {
		return nil, false, errors.New("header block is corrupt")
	}
	v, ok := policy.FindValue(ast.MustParseTerm(`{"user": "alice"}`).Value, path)
	return v, ok, nil
}

func TestBadInput(t *testing.T) {
	s, e := newService(t, policy.Options{}, map[string]string{"/svc/p.rego": servicePolicy})
	tests := []struct {
		name  string
		doc   brokenDocument
		entry string
		want  string
	}{
		{"key path", brokenDocument{find: true}, "svc/allow", "header block is corrupt"},
		{"whole value, not cacheable", brokenDocument{value: true}, "svc/clock", "body is not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := policy.InputFromDocument(tt.doc)
			for i := range 2 {
				d, err := s.Decide(t.Context(), tt.entry, in)
				if !errors.Is(err, policy.ErrBadInput) || policy.ReasonCode(err) != policy.ReasonBadInput {
					t.Fatalf("call %d: %+v, %v", i, d, err)
				}
				wantErr(t, err, tt.want)
				if d.Cached || d.Revision != e.Revision() {
					t.Errorf("failed decision %+v", d)
				}
			}
		})
	}
	// A cacheable entry point is evaluated on the input projected onto its
	// key: the whole value is never rendered, so a document that cannot
	// render it still decides from the paths the policy reads.
	for i := range 2 {
		d, err := s.Decide(t.Context(), "svc/allow", policy.InputFromDocument(brokenDocument{value: true}))
		if err != nil || !d.Allowed() || d.Cached != (i == 1) {
			t.Fatalf("projected call %d: %+v, %v", i, d, err)
		}
	}
	s, e = newService(t, policy.Options{}, map[string]string{"/svc/p.rego": servicePolicy})
	// A document that reads fine decides, and caches, like a value.
	in := policy.InputFromDocument(brokenDocument{})
	for i := range 2 {
		d, err := s.Decide(t.Context(), "svc/allow", in)
		if err != nil || !d.Allowed() || d.Cached != (i == 1) {
			t.Fatalf("call %d: %+v, %v", i, d, err)
		}
	}
	if _, err := e.Eval(t.Context(), "svc/allow", policy.InputFromDocument(brokenDocument{value: true})); !errors.Is(err, policy.ErrBadInput) {
		t.Errorf("Engine.Eval: %v", err)
	}
}

// Requests may only ask for entry points: the ones the bundle declares and
// the ones the service is configured with. A helper rule is not a decision.
func TestDecideOnlyServedEntryPoints(t *testing.T) {
	files := map[string]string{"/svc/p.rego": servicePolicy}
	a := input(t, `{"a": true}`)
	plain, e := newService(t, policy.Options{}, files)
	if _, err := plain.Decide(t.Context(), "svc/x", a); !errors.Is(err, policy.ErrUnknownEntry) {
		t.Errorf("a helper rule was served: %v", err)
	}
	// Tools still reach it through the engine.
	if _, err := e.EntryPoint(t.Context(), "svc/x"); err != nil {
		t.Errorf("Engine.EntryPoint: %v", err)
	}
	configured, _ := newService(t, policy.Options{Compile: policy.CompileOptions{EntryPoints: []string{"data.svc.x"}}}, files)
	// The helper's value (1) is not a decision, but it is evaluated.
	if _, err := configured.Decide(t.Context(), "svc/x", a); !errors.Is(err, policy.ErrInvalidDecision) {
		t.Errorf("a configured entry point: %v, want its number result rejected as a decision", err)
	}
}

func TestEvalTimeout(t *testing.T) {
	s := policy.NewService(policy.Options{EvalTimeout: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	b := newBundle(t, map[string]string{"/svc/slow.rego": `package svc

# METADATA
# entrypoint: true
slow if {
	count([x | some x in numbers.range(1, 10000000); x % 7 == 0]) > 0
}
`})
	if _, err := s.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	_, err := s.Decide(t.Context(), "svc/slow", input(t, `{}`))
	if got := policy.ReasonCode(err); got != policy.ReasonTimeout {
		t.Fatalf("reason %q (%v), want timeout from the service's own evaluation bound", got, err)
	}
}

func TestWithEvalTimeout(t *testing.T) {
	b, err := policy.LoadFS("t", fstest.MapFS{"p.rego": {Data: []byte("package p\n\n# METADATA\n# entrypoint: true\nallow if {\n\tcount([x | some x in numbers.range(1, 300000)]) > 0\n}\n")}}, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := policy.NewService(policy.Options{EvalTimeout: time.Nanosecond})
	if _, err := s.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(t.Context(), "p/allow", policy.Input{}); policy.ReasonCode(err) != policy.ReasonTimeout {
		t.Fatalf("with the service's 1 ns timeout: %v, want a timeout", err)
	}
	d, err := s.Decide(policy.WithEvalTimeout(t.Context(), time.Minute), "p/allow", policy.Input{})
	if err != nil || !d.Allowed() {
		t.Fatalf("with a minute from the context: %+v %v", d, err)
	}
}
