package extauthz

import (
	"net/http/httptest"
	"testing"
)

// Requests a client can shape so that a proxy forwards them to the
// authorization endpoint unchanged. None may be allowed: each targets a
// route that needs an API key, and sends none.
func TestHTTPClientControlledHeaders(t *testing.T) {
	s := NewServer(newService(t), Options{Logger: discardLogger})
	h := s.HTTPHandler(HTTPOptions{})
	for _, tc := range []struct {
		name, style string
		headers     map[string]string
		wantCode    string
	}{
		// A rule that is not an entry point (the bundle's own tests are
		// rules that are true) cannot be named, by URL or header.
		{"policy names a test rule (nginx URL)", "nginx", map[string]string{HeaderPolicy: "envoy/authz_test/test_public_route_needs_no_key"}, "unknown_entry_point"},
		{"policy names a test rule (traefik URL)", "traefik", map[string]string{HeaderPolicy: "envoy/authz_test/test_viewer_reads_orders"}, "unknown_entry_point"},
		{"policy names a test rule (envoy header)", "envoy", map[string]string{HeaderPolicy: "envoy/authz_test/test_admin_deletes"}, "unknown_entry_point"},
		// nginx and Traefik pass the client's headers on: a client's
		// X-Gavel-Policy is not read on their endpoints.
		{"client X-Gavel-Policy through nginx", "nginx-raw", map[string]string{"X-Gavel-Policy": "envoy/authz_test/test_admin_deletes"}, ReasonPolicyDenied},
		// Each endpoint reads only its own protocol's headers: Traefik's
		// X-Forwarded-Uri, never a client's X-Original-Uri.
		{"X-Original-Uri through traefik", "traefik", map[string]string{"X-Original-Uri": "/healthz", "X-Original-Method": "GET"}, ReasonPolicyDenied},
		{"X-Forwarded-Uri through nginx", "nginx", map[string]string{"X-Forwarded-Uri": "/healthz", "X-Forwarded-Method": "GET"}, ReasonPolicyDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			style := tc.style
			r := authzRequest(t, "nginx", "DELETE", "/admin/users/1", nil, "")
			if style == "nginx-raw" {
				for k, v := range tc.headers {
					r.Header.Set(k, v)
				}
			} else {
				r = authzRequest(t, style, "DELETE", "/admin/users/1", tc.headers, "")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code == 200 {
				t.Fatalf("allowed with %v: reason %q", tc.headers, w.Header().Get("X-Gavel-Reason"))
			}
			if got := w.Header().Get("X-Gavel-Reason-Code"); got != tc.wantCode {
				t.Errorf("reason code %q, want %q (%s)", got, tc.wantCode, w.Header().Get("X-Gavel-Reason"))
			}
		})
	}
}

func TestHTTPUnknownEndpoint(t *testing.T) {
	s := NewServer(newService(t), Options{Logger: discardLogger})
	w := httptest.NewRecorder()
	h := s.HTTPHandler(HTTPOptions{})
	h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), "GET", "/authz/api/v1/orders", nil))
	if w.Code != 404 {
		t.Fatalf("status %d, want 404 for a path that names no protocol", w.Code)
	}
}
