package extauthz

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gavel-dev/gavel/policy"
)

// TestAuditJSONMatchesValue: the audit JSON the document writes from the
// CheckRequest is the JSON of its whole value, with the same paths
// redacted, for every generated request and sensitive paths drawn from it.
func TestAuditJSONMatchesValue(t *testing.T) {
	t.Parallel()
	var compared, redacted atomic.Int64
	forShards(t, func(t *testing.T, i int, attrs *authv3.AttributeContext, rng *rand.Rand) bool {
		in, err := BuildInput(&authv3.CheckRequest{Attributes: attrs}, InputOptions{SkipBodyParse: i%10 == 0})
		if err != nil {
			return true // TestDocumentFindMatchesValue checks the refusals
		}
		full, err := in.Value()
		if err != nil {
			t.Errorf("case %d: Value: %v", i, err)
			return false
		}
		sensitive := sensitivePaths(full, rng)
		if !checkAuditJSON(t, in, full, sensitive) {
			t.Errorf("case %d: sensitive %v\nattributes:\n%s", i, sensitive, describe(attrs))
			return false
		}
		compared.Add(1)
		if len(sensitive) > 1 {
			redacted.Add(1)
		}
		return true
	}, func() {
		t.Logf("%d documents compared, %d with redactions", compared.Load(), redacted.Load())
		if compared.Load() < propertyCases/2 || redacted.Load() == 0 {
			t.Error("the generator lost its spread")
		}
	})
}

// checkAuditJSON compares policy.AuditInput of the lazy document (which
// writes itself) with that of its whole value (which the generic encoder
// writes), as JSON documents with numbers spelled as written.
func checkAuditJSON(t testing.TB, in policy.Input, full ast.Value, sensitive []ast.Ref) bool {
	t.Helper()
	got, err := policy.AuditInput(in, sensitive)
	if err != nil {
		t.Errorf("AuditInput(document): %v", err)
		return false
	}
	want, err := policy.AuditInput(policy.InputFromValue(full), sensitive)
	if err != nil {
		t.Errorf("AuditInput(value): %v", err)
		return false
	}
	if (got == nil) != (want == nil) {
		t.Errorf("AuditInput(document) nil = %v, AuditInput(value) nil = %v (sizes %d, %d)", got == nil, want == nil, len(got), len(want))
		return false
	}
	if got == nil {
		return true
	}
	g, gerr := decodeJSON(got)
	w, werr := decodeJSON(want)
	if gerr != nil || werr != nil || !reflect.DeepEqual(g, w) {
		t.Errorf("audit JSON differs (%v, %v):\n got  %s\n want %s", gerr, werr, got, want)
		return false
	}
	return true
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return v, nil
}

// sensitivePaths draws a few paths of full (input.<path>) at random, and a
// few that are not there, as an entry point's METADATA would name them.
func sensitivePaths(full ast.Value, rng *rand.Rand) []ast.Ref {
	out := []ast.Ref{ast.MustParseRef(`input.attributes.request.http.headers.authorization`)}
	for range rng.IntN(4) {
		path := ast.Ref{ast.VarTerm("input")}
		v := full
		for depth := rng.IntN(6); depth > 0; depth-- {
			switch x := v.(type) {
			case ast.Object:
				keys := x.Keys()
				if len(keys) == 0 {
					depth = 0
					continue
				}
				k := keys[rng.IntN(len(keys))]
				path, v = append(path, k), x.Get(k).Value
			case *ast.Array:
				if x.Len() == 0 {
					depth = 0
					continue
				}
				j := rng.IntN(x.Len())
				path, v = append(path, ast.IntNumberTerm(j)), x.Elem(j).Value
			default:
				depth = 0
			}
		}
		if rng.IntN(5) == 0 {
			path = append(path, ast.StringTerm("absent"))
		}
		out = append(out, path)
	}
	return out
}

// TestAuditJSONRedactsWholeAndLarge: the whole input redacted, and an input
// past policy.MaxAuditInput left out, as the generic encoder does.
func TestAuditJSONRedactsWholeAndLarge(t *testing.T) {
	req := httpRequest("POST", "/orders?x=1&x=2", map[string]string{"content-type": "application/json", "authorization": "Bearer s3cret"},
		`{"card":"4111111111111111","n":1}`)
	in, err := BuildInput(req, InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := policy.AuditInput(in, []ast.Ref{ast.MustParseRef("input")})
	if err != nil || string(got) != `"[REDACTED]"` {
		t.Errorf("whole input redacted: %s, %v", got, err)
	}
	full, _ := in.Value()
	sensitive := []ast.Ref{ast.MustParseRef("input.parsed_body.card"), ast.MustParseRef("input.attributes.request.http.body"),
		ast.MustParseRef(`input.attributes.request.http.headers.authorization`)}
	if !checkAuditJSON(t, in, full, sensitive) {
		return
	}
	got, _ = policy.AuditInput(in, sensitive)
	if bytes.Contains(got, []byte("4111")) || bytes.Contains(got, []byte("s3cret")) {
		t.Errorf("sensitive values recorded: %s", got)
	}

	big := httpRequest("GET", "/", map[string]string{"user-agent": strings.Repeat("x", policy.MaxAuditInput)}, "")
	in, err = BuildInput(big, InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := policy.AuditInput(in, nil); got != nil || err != nil {
		t.Errorf("input past the limit: %d bytes, %v; want it left out", len(got), err)
	}
}

// typedFields are the fields, by JSON name, the typed writers in
// auditfast.go write.
var typedFields = map[protoreflect.FullName][]string{
	"envoy.service.auth.v3.AttributeContext.HttpRequest": {"id", "method", "headers", "headerMap", "path", "host",
		"scheme", "query", "fragment", "size", "protocol", "body", "rawBody"},
	"envoy.service.auth.v3.AttributeContext.Peer": {"address", "service", "labels", "principal", "certificate"},
	"envoy.config.core.v3.SocketAddress": {"protocol", "address", "portValue", "namedPort", "resolverName",
		"ipv4Compat", "networkNamespaceFilepath"},
}

// TestTypedWritersKnowEveryField: the typed writers write the fields their
// messages have, no fewer and no more, so a field a newer go-control-plane
// adds to one of them fails here rather than going unrecorded.
func TestTypedWritersKnowEveryField(t *testing.T) {
	for _, m := range []proto.Message{&authv3.AttributeContext_HttpRequest{}, &authv3.AttributeContext_Peer{}, &corev3.SocketAddress{}} {
		d := m.ProtoReflect().Descriptor()
		var have []string
		for i := range d.Fields().Len() {
			have = append(have, d.Fields().Get(i).JSONName())
		}
		want := typedFields[d.FullName()]
		slices.Sort(have)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(have, want) {
			t.Errorf("%s has fields %v; the typed writer knows %v", d.FullName(), have, want)
		}
	}
}
