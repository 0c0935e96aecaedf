package extauthz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gavel-dev/gavel/policy"
)

// propertyCases is how many generated AttributeContexts each property sees.
const propertyCases = 20000

const propertySeed = 20261125

// maxFindDepth bounds the paths checkFindAgrees walks.
const maxFindDepth = 6

// maxReported stops a property after this many counterexamples.
const maxReported = 5

// generated is the shared corpus of the properties: propertyCases
// AttributeContexts from propertySeed, built once and only read.
var generated = sync.OnceValue(func() []*authv3.AttributeContext {
	g := newAttrGen(propertySeed)
	out := make([]*authv3.AttributeContext, propertyCases)
	for i := range out {
		out[i] = g.attributes()
	}
	return out
})

func describe(a *authv3.AttributeContext) string {
	return prototext.MarshalOptions{Multiline: true, EmitUnknown: true}.Format(a)
}

// propertyShards splits each property into parallel subtests: under -race
// the properties are most of the package's run time.
const propertyShards = 2

// forShards runs check over the corpus in parallel shards; check reports a
// counterexample by returning false, and a shard stops after maxReported.
// done runs once every shard has finished.
func forShards(t *testing.T, check func(t *testing.T, i int, attrs *authv3.AttributeContext, rng *rand.Rand) bool, done func()) {
	corpus := generated()
	t.Cleanup(done)
	for s := range propertyShards {
		t.Run(fmt.Sprintf("shard%d", s), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(propertySeed, uint64(s)))
			failures := 0
			for i := s; i < len(corpus) && failures < maxReported; i += propertyShards {
				if !check(t, i, corpus[i], rng) {
					failures++
				}
			}
		})
	}
}

// TestProtoValueMatchesProtojson: the direct rendering equals protojson's,
// or declines (errNeedsProtojson) exactly where BuildInput then goes
// through protojson.
func TestProtoValueMatchesProtojson(t *testing.T) {
	t.Parallel()
	var direct, viaProtojson, refused atomic.Int64
	forShards(t, func(t *testing.T, i int, attrs *authv3.AttributeContext, _ *rand.Rand) bool {
		want, wantErr := attributesViaProtojson(attrs)
		got, gotErr := protoValue(attrs.ProtoReflect())
		ok := true
		fail := func(format string, args ...any) {
			ok = false
			t.Errorf("case %d: %s\nattributes:\n%s", i, fmt.Sprintf(format, args...), describe(attrs))
		}
		switch {
		case gotErr == nil && wantErr == nil:
			direct.Add(1)
			if !sameText(got, want) {
				fail("protoValue differs from protojson:\n got  %v\n want %v", got, want)
			}
		case gotErr == nil:
			fail("protoValue rendered what protojson refuses (%v):\n got %v", wantErr, got)
		case !errors.Is(gotErr, errNeedsProtojson):
			fail("protoValue failed with %v, want errNeedsProtojson", gotErr)
		default:
			// The fallback BuildInput takes must be protojson exactly.
			v, err := attributesValue(attrs)
			switch {
			case (err == nil) != (wantErr == nil):
				fail("attributesValue err = %v, protojson err = %v", err, wantErr)
			case err == nil:
				viaProtojson.Add(1)
				if ast.Compare(v, want) != 0 {
					fail("attributesValue differs from protojson:\n got  %v\n want %v", v, want)
				}
			default:
				refused.Add(1)
			}
		}
		return ok
	}, func() {
		t.Logf("%d direct, %d through protojson, %d refused by protojson", direct.Load(), viaProtojson.Load(), refused.Load())
		if !t.Failed() && (direct.Load() < propertyCases/2 || viaProtojson.Load() == 0 || refused.Load() == 0) {
			t.Errorf("the generator lost its spread")
		}
	})
}

// TestNeedsProtojson: needsProtojson is true exactly when protoValue fails,
// and always when an Any is present.
func TestNeedsProtojson(t *testing.T) {
	t.Parallel()
	var needed atomic.Int64
	forShards(t, func(t *testing.T, i int, attrs *authv3.AttributeContext, _ *rand.Rand) bool {
		_, err := protoValue(attrs.ProtoReflect())
		needs := needsProtojson(attrs.ProtoReflect())
		if needs {
			needed.Add(1)
		}
		if needs != (err != nil) || hasAny(attrs) && !needs {
			t.Errorf("case %d: needsProtojson = %v, protoValue err = %v, Any present = %v\n%s", i, needs, err, hasAny(attrs), describe(attrs))
			return false
		}
		return true
	}, func() {
		if needed.Load() == 0 {
			t.Error("no generated case needed protojson")
		}
	})
}

// TestDocumentFindMatchesValue: the lazy document built by BuildInput
// answers every path of its whole value, and paths that are not there,
// exactly as the whole value does.
func TestDocumentFindMatchesValue(t *testing.T) {
	t.Parallel()
	var built, lazy atomic.Int64
	forShards(t, func(t *testing.T, i int, attrs *authv3.AttributeContext, rng *rand.Rand) bool {
		req := &authv3.CheckRequest{Attributes: attrs}
		in, err := BuildInput(req, InputOptions{SkipBodyParse: i%10 == 0})
		if err != nil {
			// Refused only with no HTTP request, a path url.Parse refuses,
			// or attributes protojson refuses to render.
			_, pathErr := url.Parse(attrs.GetRequest().GetHttp().GetPath())
			_, jsonErr := attributesViaProtojson(attrs)
			if !errors.Is(err, ErrBadRequest) || attrs.GetRequest().GetHttp() != nil && pathErr == nil && jsonErr == nil {
				t.Errorf("case %d: BuildInput refused a readable request: %v\n%s", i, err, describe(attrs))
				return false
			}
			return true
		}
		built.Add(1)
		if !needsProtojson(attrs.ProtoReflect()) {
			lazy.Add(1)
		}
		full, err := in.Value()
		if err != nil {
			t.Errorf("case %d: Value: %v\n%s", i, err, describe(attrs))
			return false
		}
		sub := &recordingTB{TB: t}
		checkFindAgrees(sub, in, full, rng)
		if sub.failed {
			t.Errorf("case %d: Find disagrees with Value:\n%s\nattributes:\n%s", i, strings.Join(sub.msgs, "\n"), describe(attrs))
			return false
		}
		return true
	}, func() {
		t.Logf("%d inputs built (%d lazy)", built.Load(), lazy.Load())
		if built.Load() < propertyCases/2 {
			t.Errorf("only %d of %d generated requests built an input", built.Load(), propertyCases)
		}
	})
}

// sameText is ast.Compare(a, b) == 0, and numbers spelled alike: OPA
// compares numbers by value, but json.marshal and sprintf show their text.
func sameText(a, b ast.Value) bool {
	if ast.Compare(a, b) != 0 {
		return false
	}
	switch a := a.(type) {
	case ast.Number:
		return string(a) == string(b.(ast.Number))
	case *ast.Array:
		for i := range a.Len() {
			if !sameText(a.Elem(i).Value, b.(*ast.Array).Elem(i).Value) {
				return false
			}
		}
	case ast.Object:
		same := true
		a.Foreach(func(k, v *ast.Term) {
			same = same && sameText(v.Value, b.(ast.Object).Get(k).Value)
		})
		return same
	}
	return true
}

// recordingTB collects errors so one counterexample is reported once.
type recordingTB struct {
	testing.TB
	failed bool
	msgs   []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failed = true
	if len(r.msgs) < 10 {
		r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
	}
}

// probeKeys are object keys no rendering has, or has only in another
// spelling: protobuf field names where protojson uses lowerCamel names.
var probeKeys = []*ast.Term{
	ast.StringTerm("absent-key"), ast.StringTerm(""), ast.StringTerm("raw_body"), ast.StringTerm("context_extensions"),
	ast.StringTerm("metadata_context"), ast.StringTerm("header_map"), ast.StringTerm("port_value"), ast.StringTerm("@type"),
	ast.StringTerm("Method"), ast.StringTerm("fields"), ast.StringTerm("kind"), ast.StringTerm("values"),
	ast.StringTerm("seconds"), ast.StringTerm("nanos"), ast.StringTerm("0"),
}

// probesFor are path elements below a value that must not be found, plus
// a few that may be (every JSON field name of the attributes' types).
func probesFor(v ast.Value, rng *rand.Rand) []*ast.Term {
	out := []*ast.Term{ast.IntNumberTerm(0), ast.StringTerm("x"), ast.BooleanTerm(true), ast.NullTerm()}
	switch v := v.(type) {
	case ast.Object:
		out = append(out, probeKeys[rng.IntN(len(probeKeys))], ast.IntNumberTerm(1), ast.NumberTerm("0.5"))
		names := attributeJSONNames()
		out = append(out, ast.StringTerm(names[rng.IntN(len(names))]), ast.StringTerm(names[rng.IntN(len(names))]))
	case *ast.Array:
		out = append(out, ast.StringTerm("0"), ast.IntNumberTerm(v.Len()), ast.IntNumberTerm(-1), ast.NumberTerm("0.5"))
	}
	return out
}

var attributeJSONNames = sync.OnceValue(func() []string {
	seen := map[protoreflect.FullName]bool{}
	names := map[string]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			names[fd.JSONName()] = true
			names[string(fd.Name())] = true
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if fd.Message() != nil {
				walk(fd.Message())
			}
		}
	}
	walk((&authv3.AttributeContext{}).ProtoReflect().Descriptor())
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	// Map iteration order is random; sort so the seed decides the probes.
	slices.Sort(out)
	return out
})

// checkFind checks in.Find(path) against the whole value full.
func checkFind(t testing.TB, in policy.Input, full ast.Value, path ast.Ref) {
	want, wantFound := policy.FindValue(full, path)
	got, found, err := in.Find(path)
	switch {
	case err != nil:
		t.Errorf("Find(%v): error %v", path, err)
	case found != wantFound:
		t.Errorf("Find(%v): found = %v (%v), whole value has found = %v (%v)", path, found, got, wantFound, want)
	case found && !sameText(got, want):
		t.Errorf("Find(%v) = %v, whole value has %v", path, got, want)
	}
}

// checkFindAgrees walks every path of full down to maxFindDepth and checks
// in.Find answers it as full does, and a path next to each that is
// (mostly) absent, chosen at random: unknown keys, protobuf names for lowerCamel ones, numbers
// on objects, strings on arrays, indexes out of range, keys below scalars.
// rng nil: a fixed seed.
func checkFindAgrees(t testing.TB, in policy.Input, full ast.Value, rng *rand.Rand) {
	t.Helper()
	if rng == nil {
		rng = rand.New(rand.NewPCG(1, 1))
	}
	var walk func(path ast.Ref, v ast.Value)
	walk = func(path ast.Ref, v ast.Value) {
		checkFind(t, in, full, path)
		probes := probesFor(v, rng)
		probe := append(path[:len(path):len(path)], probes[rng.IntN(len(probes))])
		if rng.IntN(2) == 0 {
			probe = append(probe, ast.StringTerm("deeper"))
		}
		checkFind(t, in, full, probe)
		if len(path) == maxFindDepth {
			return
		}
		switch v := v.(type) {
		case ast.Object:
			v.Foreach(func(k, e *ast.Term) { walk(append(path[:len(path):len(path)], k), e.Value) })
		case *ast.Array:
			for i := range v.Len() {
				walk(append(path[:len(path):len(path)], ast.IntNumberTerm(i)), v.Elem(i).Value)
			}
		}
	}
	walk(ast.Ref{}, full)
}
