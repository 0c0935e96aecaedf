package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The decision cache's one promise: a cached decision is the decision the
// engine would have made. This test holds the Service (cache in front) to
// the uncached Engine over many random inputs drawn from small domains, so
// keys collide often and the cache really answers, through a bundle
// activation and a rollback.

const propertyEntry = "gw/authz/allow"

// poolSize is how many key profiles the inputs mostly draw from.
const poolSize = 1000

// mapShared is an unbounded L2 tier that never forgets: entries of an old
// revision stay in it, so only the key can keep them from being served.
type mapShared struct {
	mu      sync.Mutex
	entries map[Key]Decision
	hits    atomic.Int64
}

func (m *mapShared) Get(_ context.Context, k Key) (Decision, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.entries[k]
	if ok {
		m.hits.Add(1)
	}
	return d, ok
}

func (m *mapShared) Set(_ context.Context, k Key, d Decision, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[k] = d
}

func loadBundle(t testing.TB, dir string) *Bundle {
	t.Helper()
	b, err := LoadDir(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compileBundle(t testing.TB, b *Bundle) *Engine {
	t.Helper()
	e, err := Compile(t.Context(), b, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// inputGen draws OPA-Envoy-shaped inputs. The values at key paths come from
// small domains that include absent, null, numbers written differently (1,
// 1.0, -0, 1e2) and nested objects built in different key orders. Most
// inputs take their key values from a fixed pool of profiles, so keys
// collide and the cache answers; a fifth change one field of a profile, so
// inputs that differ in a single key value meet in the cache, which is what
// would expose a key that leaves a path out. Fields outside the key vary
// widely and must never change a decision. Terms are built fresh for every
// input, in a random key order.
type inputGen struct {
	r    *rand.Rand
	pool []profile
}

// profile holds, per key field, an index into that field's options.
type profile [numFields]int

const (
	fMethod = iota
	fPath
	fKey
	fTenant
	fDebug
	fBody
	fAmount
	fMeta
	fPage
	fDry
	numFields
)

var (
	str  = ast.StringTerm
	num  = func(s string) *ast.Term { return ast.NumberTerm(json.Number(s)) }
	null = ast.NullTerm
	arr  = ast.ArrayTerm
)

// absent marks a field to leave out.
var absent = (*ast.Term)(nil)

// fieldOptions builds the choices for each key field; every call builds a
// fresh term, so no two inputs share one.
var fieldOptions = [numFields][]func(g inputGen) *ast.Term{
	fMethod: {
		func(inputGen) *ast.Term { return str("GET") },
		func(inputGen) *ast.Term { return str("POST") },
		func(inputGen) *ast.Term { return str("DELETE") },
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return null() },
		func(inputGen) *ast.Term { return str("get") },
	},
	fPath: {
		func(inputGen) *ast.Term { return arr(str("orders")) },
		func(inputGen) *ast.Term { return arr(str("orders"), str("1")) },
		func(inputGen) *ast.Term { return arr(str("healthz")) },
		func(inputGen) *ast.Term { return arr(str("admin")) },
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return arr(str("orders"), num("1")) },
		func(inputGen) *ast.Term { return arr() },
		func(inputGen) *ast.Term { return null() },
		func(inputGen) *ast.Term { return arr(str("orders"), str("2")) },
	},
	fKey: {
		func(inputGen) *ast.Term { return str("k1") },
		func(inputGen) *ast.Term { return str("k2") },
		func(inputGen) *ast.Term { return str("bad") },
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return null() },
		func(inputGen) *ast.Term { return num("1") },
	},
	fTenant: {
		func(inputGen) *ast.Term { return str("acme") },
		func(inputGen) *ast.Term { return str("evil") },
		func(inputGen) *ast.Term { return absent },
	},
	fDebug: {
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return str("1") },
		func(inputGen) *ast.Term { return str("0") },
	},
	fBody: { // the body is an object (two times in three), absent, or null
		func(inputGen) *ast.Term { return str("object") },
		func(inputGen) *ast.Term { return str("object") },
		func(inputGen) *ast.Term { return str("object") },
		func(inputGen) *ast.Term { return str("object") },
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return null() },
	},
	fAmount: {
		func(inputGen) *ast.Term { return num("1") },
		func(inputGen) *ast.Term { return num("1.0") },
		func(inputGen) *ast.Term { return num("150") },
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return num("0") },
		func(inputGen) *ast.Term { return num("-0") },
		func(inputGen) *ast.Term { return str("1") },
		func(inputGen) *ast.Term { return null() },
		func(inputGen) *ast.Term { return num("1e2") },
		func(inputGen) *ast.Term { return num("100.5") },
	},
	fMeta: {
		func(inputGen) *ast.Term { return absent },
		func(g inputGen) *ast.Term {
			return g.obj("a", num("1"), "b", g.obj("c", num("2"), "d", arr(num("1"), num("2"))))
		},
		func(g inputGen) *ast.Term {
			return g.obj("a", num("1.0"), "b", g.obj("c", num("2"), "d", arr(num("1"), num("2"))))
		},
		func(g inputGen) *ast.Term { return g.obj("b", g.obj("d", arr(num("2"), num("1")), "c", num("2"))) },
		func(inputGen) *ast.Term { return null() },
	},
	fPage: {
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return arr(str("1")) },
		func(inputGen) *ast.Term { return arr(str("2")) },
		func(inputGen) *ast.Term { return arr(str("x")) },
		func(inputGen) *ast.Term { return arr(str("1"), str("2")) },
	},
	fDry: {
		func(inputGen) *ast.Term { return absent },
		func(inputGen) *ast.Term { return arr(str("true")) },
		func(inputGen) *ast.Term { return arr(str("false")) },
	},
}

// newInputGen draws a pool of size profiles from a fixed seed (the same for
// every worker, so workers meet in the cache) and a stream of inputs from
// its own seed.
func newInputGen(size int, seed1, seed2 uint64) inputGen {
	pr := rand.New(rand.NewPCG(42, 42))
	pool := make([]profile, size)
	for i := range pool {
		for f := range numFields {
			pool[i][f] = pr.IntN(len(fieldOptions[f]))
		}
	}
	return inputGen{r: rand.New(rand.NewPCG(seed1, seed2)), pool: pool}
}

// obj builds an object from key/value pairs in a random insertion order,
// leaving out absent values.
func (g inputGen) obj(kv ...any) *ast.Term {
	items := make([][2]*ast.Term, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		if v := kv[i+1].(*ast.Term); v != nil {
			items = append(items, [2]*ast.Term{str(kv[i].(string)), v})
		}
	}
	g.r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return ast.ObjectTerm(items...)
}

func (g inputGen) noise(prefix string, n int) *ast.Term {
	return str(prefix + strconv.Itoa(g.r.IntN(n)))
}

func (g inputGen) input() Input {
	p := g.pool[g.r.IntN(len(g.pool))]
	if g.r.IntN(5) == 0 {
		f := g.r.IntN(numFields)
		p[f] = g.r.IntN(len(fieldOptions[f]))
	}
	v := func(f int) *ast.Term { return fieldOptions[f][p[f]](g) }

	body := v(fBody)
	if body != nil && body.Equal(str("object")) {
		body = g.obj("amount", v(fAmount), "meta", v(fMeta), "note", g.noise("note", 1<<20))
	}
	doc := g.obj(
		"attributes", g.obj(
			"request", g.obj("http", g.obj(
				"method", v(fMethod),
				"path", g.noise("/path", 1<<20),
				"headers", g.obj(
					"x-api-key", v(fKey),
					"x-tenant", v(fTenant),
					"x-debug", v(fDebug),
					// Outside the key.
					"user-agent", g.noise("agent", 1000),
					"x-request-id", g.noise("req", 1<<30),
					"x-api-key-2", g.noise("k", 3),
				),
			)),
			"source", g.obj("address", g.obj("socketAddress", g.obj("address", g.noise("10.0.0", 256)))),
		),
		"parsed_path", v(fPath),
		"parsed_query", g.obj("page", v(fPage), "dry", v(fDry), "utm", arr(g.noise("utm", 1000))),
		"parsed_body", body,
		"truncated_body", ast.BooleanTerm(g.r.IntN(2) == 0),
		"version", g.obj("encoding", str("protojson"), "ext_authz", g.noise("v", 4)),
	)
	if g.r.IntN(4) == 0 {
		// Also through the Document interface, as extauthz builds inputs.
		return InputFromDocument(valueDocument{doc.Value})
	}
	return InputFromValue(doc.Value)
}

// tally counts what the comparison saw, so the test cannot pass vacuously.
type tally struct {
	decisions, hits atomic.Int64
	byClass         sync.Map // class -> *atomic.Int64
}

func (t *tally) add(class string) {
	c, _ := t.byClass.LoadOrStore(class, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

func (t *tally) count(class string) int64 {
	if c, ok := t.byClass.Load(class); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

func classOf(d Decision, err error) string {
	if err != nil {
		return "error:" + ReasonCode(err)
	}
	return d.Outcome.String()
}

// compareOne decides in through the service and through the engine of the
// revision that answered, and reports any difference. wantRevision, when
// not empty, is the only revision allowed to answer.
func compareOne(ctx context.Context, s *Service, engines map[string]*Engine, wantRevision string, in Input, tl *tally) error {
	got, gerr := s.Decide(ctx, propertyEntry, in)
	if wantRevision != "" && got.Revision != wantRevision {
		return fmt.Errorf("answered by revision %.12s, want %.12s", got.Revision, wantRevision)
	}
	e, ok := engines[got.Revision]
	if !ok {
		return fmt.Errorf("decision from unknown revision %q", got.Revision)
	}
	want, werr := e.Eval(ctx, propertyEntry, in)
	tl.decisions.Add(1)
	tl.add(classOf(got, gerr))
	if gerr != nil || werr != nil {
		if gerr == nil || werr == nil || gerr.Error() != werr.Error() {
			return fmt.Errorf("service error %v, engine error %v", gerr, werr)
		}
		if got.Cached || got.ID != "" {
			return fmt.Errorf("failed decision %+v", got)
		}
		return nil
	}
	if got.ID == "" {
		return errors.New("decision without an ID")
	}
	cached := got.Cached
	if cached {
		tl.hits.Add(1)
	}
	got.ID, got.Cached = "", false
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("cached=%v\nservice %+v\nengine  %+v", cached, got, want)
	}
	return nil
}

// run compares n inputs on each of workers goroutines. before, called
// before each decision, names the revision that must answer it ("" for
// any revision in engines).
func run(t *testing.T, workers, n int, seed uint64, s *Service, engines map[string]*Engine, tl *tally, before func(worker, i int) string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			g := newInputGen(poolSize, seed, uint64(w))
			for i := range n {
				want := before(w, i)
				if err := compareOne(t.Context(), s, engines, want, g.input(), tl); err != nil {
					errs <- fmt.Errorf("worker %d, input %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func only(revision string) func(int, int) string { return func(int, int) string { return revision } }

func TestCachedDecisionsEqualEvaluated(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	const workers = 2
	start := time.Now()
	b1 := loadBundle(t, "testdata/property/v1")
	b2 := loadBundle(t, "testdata/property/v2")
	if b1.Revision == b2.Revision {
		t.Fatal("the two revisions are the same bundle")
	}
	// Engines compiled apart from the service: the uncached reference.
	engines := map[string]*Engine{b1.Revision: compileBundle(t, b1), b2.Revision: compileBundle(t, b2)}
	for _, e := range engines {
		ep, err := e.EntryPoint(t.Context(), propertyEntry)
		if err != nil {
			t.Fatal(err)
		}
		if !ep.Cacheable() || len(ep.Config.CacheKey) != 9 {
			t.Fatalf("%s of %s must be cacheable under its 9 key paths: %q", propertyEntry, e.Source(), ep.NotCacheable)
		}
	}

	shared := &mapShared{entries: map[Key]Decision{}}
	s := NewService(Options{Cache: CacheOptions{Shared: shared}, EvalTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	var tl tally
	activate := func(b *Bundle) {
		t.Helper()
		if _, err := s.Activate(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	perWorker := func(share float64) int { return int(float64(total)*share) / workers }

	// Revision 1.
	activate(b1)
	run(t, workers, perWorker(0.4), 1, s, engines, &tl, only(b1.Revision))

	// Revision 2 is activated while decisions are in flight, once every
	// worker is well into its run. Every decision matches the engine of the
	// revision it names, and a decision asked for after Activate returned
	// must come from revision 2, though L1 was warm and L2 holds every
	// revision-1 decision.
	var activated atomic.Bool
	ready := make(chan struct{}, workers)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for range workers {
			select {
			case <-ready:
			case <-stop:
				done <- errors.New("a worker stopped before the activation")
				return
			}
		}
		_, err := s.Activate(t.Context(), b2)
		activated.Store(err == nil)
		done <- err
	}()
	func() {
		defer close(stop)
		n := perWorker(0.4)
		run(t, workers, n, 2, s, engines, &tl, func(_, i int) string {
			if i == n/4 {
				ready <- struct{}{}
			}
			if activated.Load() {
				return b2.Revision
			}
			return ""
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	run(t, workers, perWorker(0.1), 3, s, engines, &tl, only(b2.Revision))

	// Rolling back to revision 1: its decisions in L2 are valid again.
	l2Before := shared.hits.Load()
	activate(b1)
	run(t, workers, perWorker(0.1), 1, s, engines, &tl, only(b1.Revision))
	if shared.hits.Load() == l2Before {
		t.Error("after the rollback no decision came from L2")
	}

	decisions, hits := tl.decisions.Load(), tl.hits.Load()
	ratio := float64(hits) / float64(decisions)
	var classes []string
	tl.byClass.Range(func(k, v any) bool {
		classes = append(classes, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("%d decisions in %v, %d from the cache (hit ratio %.1f%%, L2 hits %d); %s",
		decisions, time.Since(start).Round(time.Millisecond), hits, 100*ratio, shared.hits.Load(), strings.Join(classes, " "))
	if decisions < int64(total)*9/10 {
		t.Errorf("compared %d decisions, want about %d", decisions, total)
	}
	if ratio <= 0.5 {
		t.Errorf("hit ratio %.2f: the cache must answer most decisions for this test to mean anything", ratio)
	}
	for _, class := range []string{"allow", "deny", "error:" + ReasonUndefined, "error:" + ReasonEvalError} {
		if tl.count(class) < int64(total)/1000 {
			t.Errorf("only %d decisions of class %s: the inputs do not exercise the policy", tl.count(class), class)
		}
	}
}

// A key that leaves out something the policy reads must be caught at
// compile time, so the cache is bypassed; and the comparison above must be
// able to see what such a key would do.
func TestWrongCacheKeyIsCaught(t *testing.T) {
	v1 := loadBundle(t, "testdata/property/v1")
	const tenantKey = "#       - input.attributes.request.http.headers[\"x-tenant\"]\n"
	files := map[string][]byte{}
	for p, c := range v1.Files {
		files[p] = c
	}
	src := string(files["/gw/authz/authz.rego"])
	if !strings.Contains(src, tenantKey) {
		t.Fatal("the fixture no longer declares the x-tenant key")
	}
	files["/gw/authz/authz.rego"] = []byte(strings.Replace(src, tenantKey, "", 1))
	wrong, err := NewBundle("wrong-key", files)
	if err != nil {
		t.Fatal(err)
	}

	e := compileBundle(t, wrong)
	ep, err := e.EntryPoint(t.Context(), propertyEntry)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Cacheable() {
		t.Fatal("a policy reading the x-tenant header was found cacheable under a key without it")
	}
	if why := strings.Join(ep.NotCacheable, "; "); !strings.Contains(why, `reads input.attributes.request.http.headers["x-tenant"], outside the declared cache_key (gw/authz/authz.rego:`) {
		t.Errorf("NotCacheable = %q, want it to name the x-tenant read", why)
	}

	// The service bypasses the cache for it.
	shared := &mapShared{entries: map[Key]Decision{}}
	s := NewService(Options{Cache: CacheOptions{Shared: shared}, EvalTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if _, err := s.Activate(t.Context(), wrong); err != nil {
		t.Fatal(err)
	}
	g := newInputGen(poolSize, 7, 7)
	for range 2000 {
		d, err := s.Decide(t.Context(), propertyEntry, g.input())
		if err == nil && d.Cached {
			t.Fatal("a decision of a not-cacheable entry point came from the cache")
		}
	}
	if len(shared.entries) != 0 {
		t.Errorf("L2 holds %d entries of a not-cacheable entry point", len(shared.entries))
	}

	// Had the cache trusted the wrong key, the comparison would see it.
	cache := map[Key]Decision{}
	var hits, wrongHits int
	for range 5000 {
		in := g.input()
		want, err := e.Eval(t.Context(), propertyEntry, in)
		if err != nil {
			continue
		}
		k := mustKey(t, e.Revision(), propertyEntry, ep.Config.CacheKey, in)
		if d, ok := cache[k]; ok {
			hits++
			if !reflect.DeepEqual(d, want) {
				wrongHits++
			}
			continue
		}
		cache[k] = want
	}
	t.Logf("with the wrong key: %d hits, %d of them wrong", hits, wrongHits)
	if wrongHits == 0 {
		t.Error("a cache keyed without x-tenant gave no wrong answer: the property test could not catch a wrong key")
	}
}
