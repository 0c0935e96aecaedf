package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/gavel-dev/gavel/api/bundles"
	"github.com/gavel-dev/gavel/api/decisions"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/extauthz"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/sqlite"
	"github.com/gavel-dev/gavel/xds/ports"
)

// loadOpenAPI parses the served document and validates it as OpenAPI 3.1
// (kin-openapi validates 3.1 documents with JSON Schema 2020-12 schemas:
// structure, references, path parameters, unique operation ids, component
// names, and schema keywords such as const, type arrays and
// contentMediaType).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	b, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaFormatValidation()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

// allow answers every decision with allow.
type allow struct{}

func (allow) Decide(context.Context, string, policy.Input) (policy.Decision, error) {
	return policy.Decision{Outcome: policy.Allow, Revision: "test"}, nil
}

// stub stands in for handlers whose routing is a single pattern; it marks
// its answers so that response checks skip them.
var stub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Stub", "1")
	w.WriteHeader(http.StatusOK)
})

// allOptions mounts every route New has. Handlers that route below their
// prefix (hooks, bundles, decisions, authz) are the real ones, so the
// test sees which concrete paths they serve; the others are stubs.
func allOptions(t *testing.T) Options {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gavel.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return Options{
		Ready:       func() Status { return Status{Ready: true, Revision: "test", Checks: map[string]string{"policy": "ok"}} },
		Metrics:     stub,
		Authz:       extauthz.NewServer(allow{}, extauthz.Options{Logger: quiet}).HTTPHandler(extauthz.HTTPOptions{}),
		XDSSnapshot: func(string) ([]byte, error) { return []byte(`{"version": {}, "resources": {}}`), nil },
		Pprof:       true,
		Hooks:       hooks.Handler(hooks.Options{Decider: allow{}, Logger: quiet}),
		Validate:    stub,
		MCP:         stub,
		Events:      stub,
		Ports:       ports.NewMemory(ports.Options{PortMin: 30100, PortMax: 30110}),
		Bundles:     bundles.Handler(bundles.Options{Store: st, Logger: quiet}),
		Decisions:   decisions.Handler(st, quiet),
		Logger:      quiet,
	}
}

// operation is one path and method of the document.
type operation struct {
	path, method string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func (o operation) String() string { return o.method + " " + o.path }

func operations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			ops = append(ops, operation{path, method, item, op})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

// samples are the path parameter values probe requests use: revisions a
// bundle handler accepts as a prefix, a profile pprof has, an event hooks
// know; any other parameter is "x".
var samples = map[string]string{"revision": "abcdef", "a": "abcdef", "b": "abcdef", "profile": "heap", "event": "PreToolUse"}

var placeholder = regexp.MustCompile(`\{([^}]+)\}`)

// request builds a request for o, with its path parameters filled in and
// its required headers set.
func (o operation) request(t *testing.T) (*http.Request, map[string]string) {
	params := map[string]string{}
	path := placeholder.ReplaceAllStringFunc(o.path, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := samples[name]
		if !ok {
			v = "x"
		}
		params[name] = v
		return v
	})
	body := "{}"
	if o.op.RequestBody != nil && o.op.RequestBody.Value.Content.Get("application/json") == nil {
		body = ""
	}
	r := httptest.NewRequestWithContext(t.Context(), o.method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, p := range append(slices.Clone(o.item.Parameters), o.op.Parameters...) {
		if p.Value.In == openapi3.ParameterInHeader && p.Value.Required {
			r.Header.Set(p.Value.Name, "/")
		}
	}
	return r, params
}

// routed are the patterns whose handlers route further below them; the
// document names their concrete paths.
var routed = []string{"/authz/", "/v1/hooks/", "/v1/bundles", "/v1/bundles/", "/v1/decisions", "/v1/decisions/"}

// TestOpenAPIMatchesRoutes checks the document against the router both
// ways: every operation it describes is served (the ServeMux matches it,
// and a handler that routes below its prefix does not answer its own 404
// or 405), and every pattern New registers is described, method for
// method, including the concrete paths the subtree handlers serve. Every
// operation's x-gavel-role and security follow RouteRole.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	opts := allOptions(t)
	_, mux := newMux(opts)

	described := map[string][]operation{} // by the pattern that serves them
	for _, o := range operations(doc) {
		t.Run(o.String(), func(t *testing.T) {
			r, _ := o.request(t)
			_, pattern := mux.Handler(r)
			if pattern == "" {
				t.Fatalf("no route serves %s %s", r.Method, r.URL.Path)
			}
			described[pattern] = append(described[pattern], o)
			if slices.Contains(routed, pattern) {
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, r)
				if notServed(w) {
					t.Fatalf("%s matches %q, but its handler does not serve it: %d %s", r.URL.Path, pattern, w.Code, w.Body)
				}
			}

			role, open := RouteRole(pattern, o.method, false)
			got, hasRole := o.op.Extensions["x-gavel-role"]
			switch {
			case open:
				if hasRole {
					t.Errorf("x-gavel-role %v on an open route (%q)", got, pattern)
				}
				if o.op.Security == nil || len(*o.op.Security) != 0 {
					t.Errorf("security of an open route (%q) must be []", pattern)
				}
			default:
				if got != role {
					t.Errorf("x-gavel-role %v, want %q (RouteRole of %q)", got, role, pattern)
				}
				if o.op.Security == nil || len(*o.op.Security) != 1 || (*o.op.Security)[0]["bearerAuth"] == nil {
					t.Errorf("security must be [{bearerAuth: []}] on a route that needs %s", role)
				}
				for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
					if o.op.Responses.Status(code) == nil {
						t.Errorf("no %d response on a route that needs %s", code, role)
					}
				}
			}
		})
	}

	// Every registered pattern is described. ServeMux does not list its
	// patterns, so the candidates are the route table's: Routes, which
	// lists every route New may register, and the prefixes of
	// prefixRoles (registered bare and as a subtree).
	candidates := map[string]bool{}
	for _, r := range Routes {
		candidates[r.Pattern] = true
	}
	for _, p := range prefixRoles {
		candidates[p.prefix], candidates[p.prefix+"/"] = true, true
	}
	registered := 0
	for pattern := range candidates {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			method, path = http.MethodGet, pattern
		}
		probe := placeholder.ReplaceAllString(path, "x")
		if strings.HasSuffix(probe, "/") {
			probe += "x"
		}
		if _, got := mux.Handler(httptest.NewRequest(method, probe, nil)); got != pattern {
			continue // not registered
		}
		registered++
		ops := described[pattern]
		if len(ops) == 0 {
			t.Errorf("route %q is not described in openapi.yaml", pattern)
			continue
		}
		if ok && !slices.ContainsFunc(ops, func(o operation) bool { return o.method == method }) {
			t.Errorf("route %q is described only as %v", pattern, ops)
		}
	}
	if registered < 20 {
		t.Errorf("only %d routes registered with every option set", registered)
	}

	// The concrete routes of the handlers mounted on subtrees, as their
	// package docs list them.
	for _, want := range []string{
		"POST /v1/hooks/claude-code", "POST /v1/hooks/claude-code/{event}",
		"GET /v1/bundles", "POST /v1/bundles", "GET /v1/bundles/{revision}",
		"POST /v1/bundles/{revision}/activate", "POST /v1/bundles/rollback", "GET /v1/bundles/{a}/diff/{b}",
		"GET /v1/decisions", "GET /v1/decisions/{id}",
		"GET /authz/nginx", "GET /authz/traefik", "GET /authz/envoy/{path}", "POST /authz/envoy/{path}",
		"GET /v1/xds/nodes/{node}/snapshot", "GET /openapi.json",
	} {
		method, path, _ := strings.Cut(want, " ")
		if item := doc.Paths.Value(path); item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s is not described", want)
		}
	}
}

// notServed reports a ServeMux's own 404 or 405 (plain text), or the
// HTTP authorization handler's answer for a path it has no endpoint at.
func notServed(w *httptest.ResponseRecorder) bool {
	if w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
		return false
	}
	return strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") ||
		strings.Contains(w.Body.String(), "no authorization endpoint")
}

// TestOpenAPIDescribesResponses sends each described operation to the
// real handlers (the stubs and pprof excepted) and checks the answer
// against the document: its status is one the operation lists, and its
// body matches the schema.
func TestOpenAPIDescribesResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	h := New(allOptions(t))
	for _, o := range operations(doc) {
		if strings.HasPrefix(o.path, "/debug/pprof/") {
			continue // the standard library's; profile and trace take seconds
		}
		t.Run(o.String(), func(t *testing.T) {
			r, params := o.request(t)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Header().Get("X-Stub") != "" {
				t.Skip("served by a stub")
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{
					Request: r, PathParams: params,
					Route: &routers.Route{Spec: doc, Path: o.path, PathItem: o.item, Method: o.method, Operation: o.op},
				},
				Status:  w.Code,
				Header:  w.Header(),
				Options: &openapi3filter.Options{IncludeResponseStatus: true},
			}
			in.SetBodyBytes(w.Body.Bytes())
			if err := openapi3filter.ValidateResponse(t.Context(), in); err != nil {
				t.Errorf("%d %s: %v", w.Code, w.Body, err)
			}
		})
	}
}

// denyAll refuses every request that needs a role.
type denyAll struct{}

func (denyAll) Check(w http.ResponseWriter, r *http.Request, _, _ string) (*http.Request, bool) {
	w.WriteHeader(http.StatusUnauthorized)
	return r, false
}

// TestOpenAPIServed fetches the document from a real server that refuses
// every credential: it is open, JSON, and OpenAPI 3.1.0.
func TestOpenAPIServed(t *testing.T) {
	opts := allOptions(t)
	opts.Auth = denyAll{}
	srv := httptest.NewServer(New(opts))
	defer srv.Close()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/openapi.json", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var got struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("GET /openapi.json is not JSON: %v", err)
	}
	if got.OpenAPI != "3.1.0" || len(got.Paths) == 0 {
		t.Errorf("openapi %q with %d paths", got.OpenAPI, len(got.Paths))
	}
	want, _ := OpenAPI()
	if !bytes.Equal(body, want) {
		t.Error("the served document differs from OpenAPI()")
	}

	// A route that needs a role is refused by the same server.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/services", nil)
	if res, err := srv.Client().Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/services without credentials: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}
