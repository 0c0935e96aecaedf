package policy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
)

// manifest is a .manifest that lets a test bundle define any package.
const manifest = `{"roots": [""], "rego_version": 1}`

// newBundle builds a bundle from inline files, adding a permissive manifest
// unless the test brings its own.
func newBundle(t testing.TB, files map[string]string) *policy.Bundle {
	t.Helper()
	raw := make(map[string][]byte, len(files)+1)
	for p, s := range files {
		raw[p] = []byte(s)
	}
	if _, ok := raw["/.manifest"]; !ok {
		raw["/.manifest"] = []byte(manifest)
	}
	b, err := policy.NewBundle(t.Name(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compile builds and compiles a bundle of inline files.
func compile(t testing.TB, files map[string]string) *policy.Engine {
	t.Helper()
	e, err := policy.Compile(t.Context(), newBundle(t, files), policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// decodeJSON decodes a JSON document the way callers feed policies: numbers
// stay json.Number.
func decodeJSON(t testing.TB, doc string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	return v
}

// input builds a policy input from a JSON document.
func input(t testing.TB, doc string) policy.Input {
	t.Helper()
	in, err := policy.NewInput(decodeJSON(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// lineOf is the 1-based line of src that contains marker; tests use it to
// check that messages point at the right place without counting by hand.
func lineOf(t testing.TB, src, marker string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in source", marker)
	return 0
}

// wantErr fails unless err is non-nil and its message contains every part.
func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
