package extauthz

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

func benchRequest() *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress("10.0.0.7", 53412)},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress("10.0.0.9", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "8c1e1f1c-5f0e-4a4a-9a5e-0b8f5f6f7a10", Method: "POST", Path: "/api/v1/orders/42?expand=items",
			Host: "orders.internal", Scheme: "http", Protocol: "HTTP/1.1", Size: 34,
			Headers: map[string]string{
				":authority": "orders.internal", ":method": "POST", ":path": "/api/v1/orders/42?expand=items", ":scheme": "http",
				"content-type": "application/json", "content-length": "34", "user-agent": "curl/8.5.0", "accept": "*/*",
				"x-api-key": "k-editor", "x-request-id": "8c1e1f1c-5f0e-4a4a-9a5e-0b8f5f6f7a10", "x-forwarded-proto": "http",
			},
			Body: `{"item":"book","qty":2,"note":"ok"}`,
		}},
		ContextExtensions: map[string]string{"policy": "envoy/authz/allow"},
	}}
}

func benchService(b *testing.B, cache bool) *policy.Service {
	bundle, err := builtin.BundleWithKeys(map[string]builtin.Principal{"k-editor": {Name: "ed", Roles: []string{"editor"}}})
	if err != nil {
		b.Fatal(err)
	}
	svc := policy.NewService(policy.Options{Cache: policy.CacheOptions{Disabled: !cache}, Logger: discardLogger})
	if _, err := svc.Activate(b.Context(), bundle); err != nil {
		b.Fatal(err)
	}
	return svc
}

// BenchmarkBuildInput compares what a cache hit pays for its input (the
// key paths, read from the request), what a miss of a policy that reads
// everything pays (the whole document), and the protojson route
// opa-envoy-plugin takes for the attributes alone.
func BenchmarkBuildInput(b *testing.B) {
	req := benchRequest()
	keys := []ast.Ref{
		ast.MustParseRef("input.attributes.request.http.method")[1:],
		ast.MustParseRef("input.parsed_path")[1:],
		ast.MustParseRef(`input.attributes.request.http.headers["x-api-key"]`)[1:],
		ast.MustParseRef("input.parsed_body")[1:],
	}
	b.Run("key-paths", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in, err := BuildInput(req, InputOptions{})
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range keys {
				if _, ok, err := in.Find(k); !ok || err != nil {
					b.Fatal(k, err)
				}
			}
		}
	})
	b.Run("whole-document", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in, err := BuildInput(req, InputOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := in.Value(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson-attributes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := attributesViaProtojson(req.Attributes); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	req := benchRequest()
	for _, tc := range []struct {
		name  string
		cache bool
	}{{"hit", true}, {"miss", false}} {
		b.Run(tc.name, func(b *testing.B) {
			s := NewServer(benchService(b, tc.cache), Options{Logger: discardLogger})
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := s.Check(b.Context(), req)
				if resp.Status.Code != 0 {
					b.Fatal(resp)
				}
			}
		})
	}
}

// BenchmarkAuditInput is what recording a Check's input costs the audit
// writer, with the built-in bundle's three sensitive headers: written
// straight from the CheckRequest (what gavel does), against building the
// whole OPA value and encoding that (the generic route, which a decision
// the cache answered would otherwise pay for).
func BenchmarkAuditInput(b *testing.B) {
	req := benchRequest()
	redaction := policy.NewRedaction([]ast.Ref{
		ast.MustParseRef(`input.attributes.request.http.headers["x-api-key"]`),
		ast.MustParseRef(`input.attributes.request.http.headers.authorization`),
		ast.MustParseRef(`input.attributes.request.http.headers.cookie`),
	})
	b.Run("from-request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in, err := BuildInput(req, InputOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := policy.RedactedInput(in, redaction); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("from-value", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in, err := BuildInput(req, InputOptions{})
			if err != nil {
				b.Fatal(err)
			}
			v, err := in.Value()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := policy.RedactedInput(policy.InputFromValue(v), redaction); err != nil {
				b.Fatal(err)
			}
		}
	})
}
