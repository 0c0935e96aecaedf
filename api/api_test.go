package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var quiet = slog.New(slog.DiscardHandler)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), "GET", path, nil))
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	ready := Status{}
	h := New(Options{Ready: func() Status { return ready }, Logger: quiet})

	if res, body := get(t, h, "/healthz"); res.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz: %d %s", res.StatusCode, body)
	}
	ready = Status{Ready: false, Checks: map[string]string{"policy": "no active bundle"}}
	res, body := get(t, h, "/readyz")
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no active bundle") {
		t.Fatalf("/readyz before a bundle: %d %s", res.StatusCode, body)
	}
	ready = Status{Ready: true, Revision: "abc", Checks: map[string]string{"policy": "ok"}}
	res, body = get(t, h, "/readyz")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || res.StatusCode != 200 || st.Revision != "abc" || !st.Ready {
		t.Fatalf("/readyz when ready: %d %s (%v)", res.StatusCode, body, err)
	}
	if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/readyz headers %v", res.Header)
	}
}

func TestMountsOnlyWhatIsGiven(t *testing.T) {
	h := New(Options{Logger: quiet})
	for _, path := range []string{"/metrics", "/authz/nginx", "/debug/pprof/"} {
		if res, _ := get(t, h, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404 when not configured", path, res.StatusCode)
		}
	}
	// With no readiness function, the process is ready.
	if res, _ := get(t, h, "/readyz"); res.StatusCode != 200 {
		t.Errorf("/readyz: %d", res.StatusCode)
	}

	called := map[string]bool{}
	mark := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called[name] = true })
	}
	h = New(Options{Metrics: mark("metrics"), Authz: mark("authz"), Pprof: true, Logger: quiet})
	get(t, h, "/metrics")
	get(t, h, "/authz/envoy/api/v1/orders")
	if !called["metrics"] || !called["authz"] {
		t.Errorf("handlers called: %v", called)
	}
	if res, _ := get(t, h, "/debug/pprof/"); res.StatusCode != 200 {
		t.Errorf("/debug/pprof/ with Pprof: %d", res.StatusCode)
	}
}

func TestEventsMountedAtV1Events(t *testing.T) {
	called := false
	h := New(Options{Logger: quiet, Events: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })})
	if res, _ := get(t, h, "/v1/events?type=decision"); res.StatusCode != http.StatusOK || !called {
		t.Fatalf("GET /v1/events: %d, handler called %v", res.StatusCode, called)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/events", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/events: %d, want 405", rec.Code)
	}
}

func TestErrorAdapterHidesInternals(t *testing.T) {
	tests := []struct {
		err      error
		code     int
		body     string
		leaksNot string
	}{
		{&Error{Code: 400, Message: "bundle too large", Err: errors.New("read /var/lib/x: detail")}, 400, "bundle too large", "/var/lib"},
		{errors.New("pq: password authentication failed for user gavel"), 500, "internal error", "password"},
	}
	for _, tc := range tests {
		h := handle(quiet, func(http.ResponseWriter, *http.Request) error { return tc.err })
		res, body := get(t, h, "/")
		if res.StatusCode != tc.code || !strings.Contains(body, tc.body) || strings.Contains(body, tc.leaksNot) {
			t.Errorf("%v: %d %s", tc.err, res.StatusCode, body)
		}
	}
}

// The authorization endpoints get the path as the proxy sent it, not a
// cleaned one or a redirect.
func TestAuthzPathsAreNotCleaned(t *testing.T) {
	var seen string
	h := New(Options{Authz: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.URL.Path })})
	for _, p := range []string{"/authz/envoy//admin", "/authz/envoy/a/../admin", "/authz/envoy/./x"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK || seen != p {
			t.Errorf("%s: %d, handler saw %q", p, rec.Code, seen)
		}
	}
}
