package policy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gavel-dev/gavel/policy"
)

func TestAuditInput(t *testing.T) {
	in, err := policy.NewInput(map[string]any{
		"headers": map[string]any{"x-api-key": "s3cret", "accept": "*/*"},
		"items":   []any{"a", map[string]any{"token": "t0k"}},
		"prompt":  "hello",
	})
	if err != nil {
		t.Fatal(err)
	}
	refs := []ast.Ref{
		ast.MustParseRef(`input.headers["x-api-key"]`),
		ast.MustParseRef(`input.items[1].token`),
		ast.MustParseRef(`input.prompt`),
		ast.MustParseRef(`input.missing.deeper`),
		ast.MustParseRef(`input.items[7]`),
	}
	b, err := policy.AuditInput(in, refs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"headers":{"accept":"*/*","x-api-key":"[REDACTED]"},"items":["a",{"token":"[REDACTED]"}],"prompt":"[REDACTED]"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	big, _ := policy.NewInput(map[string]any{"x": strings.Repeat("y", policy.MaxAuditInput)})
	if b, err := policy.AuditInput(big, nil); err != nil || b != nil {
		t.Fatalf("an input over the limit: %d bytes, %v; want it left out", len(b), err)
	}
	if b, err := policy.AuditInput(policy.Input{}, refs); err != nil || b != nil {
		t.Fatalf("no input: %s %v", b, err)
	}
}

// FuzzAuditInput: whatever JSON document the input is, the recorded input
// is valid JSON holding the same document (nothing is marked sensitive).
func FuzzAuditInput(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x\n\u0001\"\\"],"b":{"c":null,"d":true}}`, `"\u2028 é \ud83d\ude00"`, `[]`, `{}`, `-0`, `1e400`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var v any
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		in, err := policy.NewInput(v)
		if err != nil {
			return
		}
		b, err := policy.AuditInput(in, nil)
		if err != nil || b == nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("not JSON: %q from %q", b, doc)
		}
		var got any
		d2 := json.NewDecoder(strings.NewReader(string(b)))
		d2.UseNumber()
		if err := d2.Decode(&got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		have, _ := json.Marshal(got)
		if string(want) != string(have) {
			t.Fatalf("recorded %s, want %s", have, want)
		}
	})
}
