package policy_test

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gavel-dev/gavel/policy"
)

// BenchmarkAuditInput renders an ext_authz-sized input (about 1.5 KiB, the
// CheckRequest attributes plus the parsed path and query) for the audit
// trail with two sensitive headers redacted.
func BenchmarkAuditInput(b *testing.B) {
	headers := map[string]any{"x-api-key": "k-editor", "authorization": "Bearer abc", ":method": "GET", ":path": "/api/v1/orders?limit=10",
		"user-agent": strings.Repeat("Mozilla/5.0 ", 8), "x-request-id": "8c1e1f1c-5f0e-4a4a-9a5e-0b8f5f6f7a10", "accept": "application/json"}
	in, err := policy.NewInput(map[string]any{
		"attributes": map[string]any{
			"source":      map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.0.0.7", "portValue": 51234}}},
			"destination": map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.0.0.9", "portValue": 8080}}},
			"request": map[string]any{"time": "2026-11-25T12:00:00Z", "http": map[string]any{"id": "123", "method": "GET", "headers": headers,
				"path": "/api/v1/orders?limit=10", "host": "orders.svc", "scheme": "http", "protocol": "HTTP/1.1"}},
			"contextExtensions": map[string]any{"policy": "envoy/authz/allow"},
		},
		"parsed_path":  []any{"api", "v1", "orders"},
		"parsed_query": map[string]any{"limit": []any{"10"}},
		"parsed_body":  nil,
		"version":      map[string]any{"encoding": "protojson", "ext_authz": "v3"},
	})
	if err != nil {
		b.Fatal(err)
	}
	sensitive := []ast.Ref{
		ast.MustParseRef(`input.attributes.request.http.headers["x-api-key"]`),
		ast.MustParseRef(`input.attributes.request.http.headers.authorization`),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.AuditInput(in, sensitive); err != nil {
			b.Fatal(err)
		}
	}
}
