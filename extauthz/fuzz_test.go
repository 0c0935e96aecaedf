package extauthz

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// FuzzBuildInput feeds BuildInput two ways: arbitrary bytes decoded as a
// CheckRequest (what reaches the gRPC server), and a request built from a
// path, content type and body. It must never panic; when it builds an
// input, the lazy document must answer each top-level key, and each key of
// attributes, exactly as its whole value, and write the same audit JSON.
func FuzzBuildInput(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "input", "*.request.json"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		req := &authv3.CheckRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil {
			f.Fatal(err)
		}
		bs, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		h := req.GetAttributes().GetRequest().GetHttp()
		f.Add(bs, h.GetPath(), h.GetHeaders()["content-type"], h.GetBody())
	}
	f.Add([]byte{}, "/a/%zz?x", "application/json", `{"a":`)
	f.Add([]byte{0x0a, 0x00}, "", "multipart/form-data; boundary=", "--\r\n")
	f.Add([]byte{0x0a, 0x02, 0x22, 0x00}, "//a//b/?q=%20&q", "application/x-www-form-urlencoded", "a=%zz&b")

	f.Fuzz(func(t *testing.T, raw []byte, path, contentType, body string) {
		req := &authv3.CheckRequest{}
		if err := proto.Unmarshal(raw, req); err == nil {
			checkBuiltInput(t, req)
		}
		headers := map[string]string{"content-type": contentType}
		if len(body) > 0 {
			headers["content-length"] = strconv.Itoa(len(body) + len(path)%3 - 1) // short, exact or long
		}
		checkBuiltInput(t, httpRequest("POST", path, headers, body))
	})
}

func checkBuiltInput(t *testing.T, req *authv3.CheckRequest) {
	t.Helper()
	for _, opts := range []InputOptions{{}, {SkipBodyParse: true}} {
		in, err := BuildInput(req, opts)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("BuildInput: %v, not a bad request", err)
			}
			return
		}
		full, err := in.Value()
		if err != nil {
			t.Fatalf("Value failed after BuildInput succeeded: %v", err)
		}
		obj, ok := full.(ast.Object)
		if !ok {
			t.Fatalf("input is %T", full)
		}
		paths := []ast.Ref{{ast.StringTerm("absent")}, {ast.IntNumberTerm(0)}, {attributesKey, ast.StringTerm("absent")}}
		for _, k := range obj.Keys() {
			paths = append(paths, ast.Ref{k})
		}
		if attrs, ok := obj.Get(attributesKey).Value.(ast.Object); ok {
			for _, k := range attrs.Keys() {
				paths = append(paths, ast.Ref{attributesKey, k})
			}
		}
		for _, p := range paths {
			checkFind(t, in, full, p)
		}
		checkAuditJSON(t, in, full, []ast.Ref{
			ast.MustParseRef(`input.attributes.request.http.headers.authorization`),
			ast.MustParseRef(`input.parsed_body.password`),
			ast.MustParseRef(`input.attributes.request.http.body`),
		})
	}
}

// FuzzCheckRequestFromHTTP drives the HTTP authorization endpoint with
// arbitrary methods, URIs, headers and bodies, in the three proxy styles,
// never with an API key. It must never panic, always name the decision, and
// allow only what the default bundle allows without a key: its public
// routes.
func FuzzCheckRequestFromHTTP(f *testing.F) {
	s := NewServer(newService(f), Options{Logger: discardLogger})
	const maxBody = 64 << 10 // the default, spelled out for checkRequestFromHTTP
	h := s.HTTPHandler(HTTPOptions{MaxBodyBytes: maxBody})
	modes := []string{ModeNginx, ModeTraefik, ModeEnvoy}

	f.Add(uint8(0), "GET", "/healthz", "Accept", "*/*", "")
	f.Add(uint8(0), "GET", "/api/v1/orders", "Authorization", "Bearer x", "")
	f.Add(uint8(1), "POST", "/api/v1/orders?x=1", "Content-Type", "application/json", `{"a":"4111 1111 1111 1111"}`)
	f.Add(uint8(2), "DELETE", "/admin/users/1", "X-Forwarded-Uri", "/healthz", "")
	f.Add(uint8(2), "GET", "/%68ealthz", "X-Envoy-Auth-Partial-Body", "true", "")
	f.Add(uint8(1), "GET", "/readyz/../admin", "X-Original-Uri", "admin", "")
	f.Add(uint8(0), "\x00", "/%zz", "X-Gavel-Policy", "envoy/authz", "")
	f.Add(uint8(2), "PATCH", "//healthz", "Content-Length", "-1", "x")

	f.Fuzz(func(t *testing.T, style uint8, method, uri, headerName, headerValue, body string) {
		if strings.EqualFold(strings.TrimSpace(headerName), "x-api-key") {
			headerName = "X-Not-A-Key"
		}
		build := func() *http.Request {
			r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/authz/"+modes[style%3], strings.NewReader(body))
			switch style % 3 {
			case 0: // nginx
				r.Header.Set("X-Original-URI", uri)
				r.Header.Set("X-Original-Method", method)
			case 1: // traefik
				r.Header.Set("X-Forwarded-Uri", uri)
				r.Header.Set("X-Forwarded-Method", method)
				r.Header.Set("X-Forwarded-Host", "svc.example")
			default: // envoy http_service
				if !strings.HasPrefix(uri, "/") {
					return nil // Envoy appends an origin-form path, which starts with /
				}
				u, err := url.ParseRequestURI("/authz/envoy" + uri)
				if err != nil {
					return nil // no server would hand this request over
				}
				r.Method, r.URL, r.RequestURI = method, u, "/authz/envoy"+uri
			}
			r.Header[headerName] = append(r.Header[headerName], headerValue)
			return r
		}
		r := build()
		if r == nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		if w.Header().Get("X-Gavel-Decision-Id") == "" || w.Header().Get("X-Gavel-Reason-Code") == "" {
			t.Fatalf("answer %d without a decision id or reason code: %v", w.Code, w.Header())
		}
		if w.Code != http.StatusOK {
			if w.Code < 400 {
				t.Fatalf("answered %d: a denial must be 4xx or 5xx", w.Code)
			}
			return
		}
		// Allowed: it must be a public route of the default bundle, for the
		// request the handler saw.
		if code := w.Header().Get("X-Gavel-Reason-Code"); code != ReasonPolicyAllowed {
			t.Fatalf("200 with reason code %q", code)
		}
		req, err := checkRequestFromHTTP(build(), modes[style%3], "/authz/envoy", maxBody)
		if err != nil {
			t.Fatalf("200 for a request that cannot be read: %v", err)
		}
		in, err := BuildInput(req, InputOptions{})
		if err != nil {
			t.Fatalf("200 for a bad request: %v", err)
		}
		first, _, _ := in.Find(ast.Ref{ast.StringTerm("parsed_path"), ast.IntNumberTerm(0)})
		if first == nil || (ast.Compare(first, ast.String("healthz")) != 0 && ast.Compare(first, ast.String("readyz")) != 0) {
			t.Fatalf("allowed %q %q without an API key (parsed_path starts %v, entry %q, reason %q)",
				method, uri, first, r.Header.Get(HeaderPolicy), w.Header().Get("X-Gavel-Reason"))
		}
	})
}
