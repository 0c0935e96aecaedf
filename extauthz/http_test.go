package extauthz

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gavel-dev/gavel/policy"
)

// recordingDecider is the real policy service, plus a note of the inputs
// it was asked about.
type recordingDecider struct {
	*policy.Service
	mu     sync.Mutex
	inputs []ast.Value
}

func (r *recordingDecider) Decide(ctx context.Context, entry string, in policy.Input) (policy.Decision, error) {
	if v, err := in.Value(); err == nil {
		r.mu.Lock()
		r.inputs = append(r.inputs, v)
		r.mu.Unlock()
	}
	return r.Service.Decide(ctx, entry, in)
}

func (r *recordingDecider) last(t *testing.T) ast.Value {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.inputs) == 0 {
		t.Fatal("the decider saw no input")
	}
	return r.inputs[len(r.inputs)-1]
}

// find reads a path such as input.attributes.request.http.host.
func find(t *testing.T, v ast.Value, ref string) any {
	t.Helper()
	got, ok := policy.FindValue(v, ast.MustParseRef(ref)[1:])
	if !ok {
		return nil
	}
	doc, err := ast.JSON(got)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// authzRequest builds the request a proxy sends to the authorization
// endpoint for the original method, URI, headers and body.
func authzRequest(t *testing.T, style, method, uri string, headers map[string]string, body string) *http.Request {
	t.Helper()
	var r *http.Request
	switch style {
	case "nginx": // auth_request: GET to the endpoint, the original in X-Original-*
		r = httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/authz/nginx", strings.NewReader(body))
		r.Header.Set("X-Original-URI", uri)
		r.Header.Set("X-Original-Method", method)
	case "traefik": // forwardAuth: GET to the endpoint, the original in X-Forwarded-*
		r = httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/authz/traefik", strings.NewReader(body))
		r.Header.Set("X-Forwarded-Method", method)
		r.Header.Set("X-Forwarded-Uri", uri)
		r.Header.Set("X-Forwarded-Host", "orders.example")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-For", "203.0.113.9, 10.0.0.1")
	case "envoy": // http_service: the original method, the path below path_prefix
		r = httptest.NewRequestWithContext(t.Context(), method, "/authz/envoy"+uri, strings.NewReader(body))
	default:
		t.Fatalf("unknown style %q", style)
	}
	for k, v := range headers {
		if k == HeaderPolicy && style != "envoy" {
			// nginx and Traefik name the entry point in the URL their
			// configuration fixes, not in a header.
			r.URL.RawQuery = url.Values{QueryPolicy: {v}}.Encode()
			continue
		}
		r.Header.Set(k, v)
	}
	return r
}

const cardBody = `{"item":"book","note":"pay with 4111 1111 1111 1111"}`

func TestHTTPHandler(t *testing.T) {
	rec := &recordingDecider{Service: newService(t)}
	s := NewServer(rec, Options{Logger: discardLogger})
	h := s.HTTPHandler(HTTPOptions{})
	editor := map[string]string{"X-Api-Key": "k-editor"}
	editorJSON := map[string]string{"X-Api-Key": "k-editor", "Content-Type": "application/json"}
	unknownEntry := map[string]string{"X-Api-Key": "k-editor", HeaderPolicy: "envoy/authz/nope"}

	for _, tc := range []struct {
		name, style, method, uri string
		headers                  map[string]string
		body                     string
		wantStatus               int
		wantGavelStatus          string // X-Gavel-Status
		wantCode                 string // X-Gavel-Reason-Code
		wantPrincipal            string
	}{
		{"nginx allow", "nginx", "GET", "/api/v1/orders", editor, "", 200, "", ReasonPolicyAllowed, "ed"},
		{"nginx public", "nginx", "GET", "/healthz", nil, "", 200, "", ReasonPolicyAllowed, ""},
		{"nginx 401 passes", "nginx", "GET", "/api/v1/orders", nil, "", 401, "", ReasonPolicyDenied, ""},
		{"nginx 403 passes", "nginx", "DELETE", "/api/v1/orders/7", editor, "", 403, "", ReasonPolicyDenied, ""},
		{"nginx 404 becomes 403", "nginx", "GET", "/api/v2/nothing", editor, "", 403, "404", ReasonPolicyDenied, ""},
		{"nginx 405 becomes 403", "nginx", "PATCH", "/api/v1/orders", editor, "", 403, "405", ReasonPolicyDenied, ""},
		{"nginx 422 becomes 403", "nginx", "POST", "/api/v1/orders", editorJSON, cardBody, 403, "422", ReasonPolicyDenied, ""},
		{"nginx unknown entry", "nginx", "GET", "/api/v1/orders", unknownEntry, "", 503, "500", policy.ReasonUnknownEntry, ""},
		{"nginx bad uri", "nginx", "GET", "orders", editor, "", 503, "400", ReasonBadRequest, ""},
		{"traefik allow", "traefik", "GET", "/api/v1/orders?page=2", map[string]string{"X-Api-Key": "k-viewer"}, "", 200, "", ReasonPolicyAllowed, "vera"},
		{"traefik 401", "traefik", "GET", "/api/v1/orders", nil, "", 401, "", ReasonPolicyDenied, ""},
		{"traefik 404 stays", "traefik", "GET", "/nothing", editor, "", 404, "", ReasonPolicyDenied, ""},
		{"envoy allow", "envoy", "GET", "/api/v1/orders/42", editor, "", 200, "", ReasonPolicyAllowed, "ed"},
		{"envoy 401", "envoy", "GET", "/api/v1/orders", nil, "", 401, "", ReasonPolicyDenied, ""},
		{"envoy 404 stays", "envoy", "GET", "/api/v2/nothing", editor, "", 404, "", ReasonPolicyDenied, ""},
		{"envoy 405 stays", "envoy", "PATCH", "/api/v1/orders", editor, "", 405, "", ReasonPolicyDenied, ""},
		{"envoy 422 card number", "envoy", "POST", "/api/v1/orders", editorJSON, cardBody, 422, "", ReasonPolicyDenied, ""},
		{"envoy clean body", "envoy", "POST", "/api/v1/orders", editorJSON, `{"item":"book","qty":2}`, 200, "", ReasonPolicyAllowed, "ed"},
		{"envoy unknown entry", "envoy", "GET", "/api/v1/orders", unknownEntry, "", 500, "", policy.ReasonUnknownEntry, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, authzRequest(t, tc.style, tc.method, tc.uri, tc.headers, tc.body))
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d (body %s)", res.StatusCode, tc.wantStatus, body)
			}
			if got := res.Header.Get(HeaderStatus); got != tc.wantGavelStatus {
				t.Errorf("%s = %q, want %q", HeaderStatus, got, tc.wantGavelStatus)
			}
			if got := res.Header.Get("X-Gavel-Reason-Code"); got != tc.wantCode {
				t.Errorf("X-Gavel-Reason-Code = %q, want %q", got, tc.wantCode)
			}
			if got := res.Header.Get("X-Gavel-Principal"); got != tc.wantPrincipal {
				t.Errorf("X-Gavel-Principal = %q, want %q", got, tc.wantPrincipal)
			}
			for _, name := range []string{"X-Gavel-Decision-Id", "X-Gavel-Policy-Revision", "X-Gavel-Reason"} {
				if _, ok := res.Header[name]; !ok {
					t.Errorf("no %s", name)
				}
			}
			if res.Header.Get("X-Gavel-Decision-Id") == "" || res.Header.Get("X-Gavel-Reason") == "" {
				t.Errorf("empty decision id or reason: %v", res.Header)
			}
			// A request that cannot be read reaches no policy, so no revision.
			if got := res.Header.Get("X-Gavel-Policy-Revision"); (got == "") != (tc.wantCode == ReasonBadRequest) {
				t.Errorf("X-Gavel-Policy-Revision = %q", got)
			}
			if res.StatusCode == http.StatusOK {
				if len(body) != 0 {
					t.Errorf("an allow has a body: %s", body)
				}
				return
			}
			// A denial's body is the policy's, or gavel's JSON error.
			var doc map[string]any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Errorf("denial body %q is not JSON: %v", body, err)
			}
			if res.Header.Get("Content-Type") != "application/json" {
				t.Errorf("denial Content-Type %q", res.Header.Get("Content-Type"))
			}
		})
	}

	t.Run("traefik input", func(t *testing.T) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, authzRequest(t, "traefik", "PUT", "/api/v1/orders/9?dry=1", map[string]string{"X-Api-Key": "k-admin"}, ""))
		if w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		in := rec.last(t)
		for ref, want := range map[string]any{
			"input.attributes.request.http.method":                        "PUT",
			"input.attributes.request.http.path":                          "/api/v1/orders/9?dry=1",
			"input.attributes.request.http.host":                          "orders.example",
			"input.attributes.request.http.scheme":                        "https",
			`input.attributes.request.http.headers[":authority"]`:         "orders.example",
			`input.attributes.request.http.headers["x-api-key"]`:          "k-admin",
			"input.attributes.source.address.socketAddress.address":       "10.0.0.1", // the hop Traefik appended
			"input.parsed_query.dry":                                      []any{"1"},
			`input.attributes.request.http.headers["x-forwarded-method"]`: nil, // consumed, not passed on
		} {
			if got := find(t, in, ref); !jsonEqual(got, want) {
				t.Errorf("%s = %v, want %v", ref, got, want)
			}
		}
	})

	t.Run("nginx input", func(t *testing.T) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, authzRequest(t, "nginx", "DELETE", "/api/v1/orders/9", map[string]string{"X-Api-Key": "k-admin"}, ""))
		if w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		in := rec.last(t)
		for ref, want := range map[string]any{
			"input.attributes.request.http.method":                       "DELETE",
			"input.parsed_path":                                          []any{"api", "v1", "orders", "9"},
			`input.attributes.request.http.headers[":method"]`:           "DELETE",
			`input.attributes.request.http.headers["x-original-uri"]`:    nil, // consumed, not passed on
			`input.attributes.request.http.headers["x-original-method"]`: nil,
		} {
			if got := find(t, in, ref); !jsonEqual(got, want) {
				t.Errorf("%s = %v, want %v", ref, got, want)
			}
		}
	})
}

func TestHTTPHandlerOptions(t *testing.T) {
	rec := &recordingDecider{Service: newService(t)}
	s := NewServer(rec, Options{Logger: discardLogger})

	t.Run("prefix", func(t *testing.T) {
		h := s.HTTPHandler(HTTPOptions{Prefix: "/check"})
		w := httptest.NewRecorder()
		r := httptest.NewRequestWithContext(t.Context(), "GET", "/check/envoy/api/v1/orders?x=1", nil)
		r.Header.Set("X-Api-Key", "k-viewer")
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		if got := find(t, rec.last(t), "input.attributes.request.http.path"); got != "/api/v1/orders?x=1" {
			t.Errorf("path %v", got)
		}
	})

	t.Run("body over the limit is truncated", func(t *testing.T) {
		h := s.HTTPHandler(HTTPOptions{MaxBodyBytes: 16})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, authzRequest(t, "envoy", "POST", "/api/v1/orders", map[string]string{"X-Api-Key": "k-editor", "Content-Type": "application/json"}, cardBody))
		in := rec.last(t)
		if got := find(t, in, "input.truncated_body"); got != true {
			t.Errorf("truncated_body = %v, want true", got)
		}
		if got := find(t, in, "input.parsed_body"); got != nil {
			t.Errorf("parsed_body = %v, want null", got)
		}
		if got := find(t, in, "input.attributes.request.http.body"); got != cardBody[:16] {
			t.Errorf("body = %q, want the first 16 bytes", got)
		}
	})
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
