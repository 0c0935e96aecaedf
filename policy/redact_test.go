package policy_test

import (
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
