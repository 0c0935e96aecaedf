package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/xds/ports"
)

func do(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), method, path, r))
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	return v
}

func TestPortsLifecycle(t *testing.T) {
	h := New(Options{Ports: ports.NewMemory(ports.Options{}), Logger: quiet})

	code, body := do(t, h, "POST", "/v1/services/web/instances", `{"labels": {"zone": "a"}, "ttl": "1m"}`)
	if code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	web := decode[instanceJSON](t, body)
	if web.Service != "web" || web.ID == "" || web.Address != "127.0.0.1" || web.Port < 20000 || web.Port > 29999 ||
		web.Labels["zone"] != "a" || web.TTL != "1m0s" || time.Until(web.ExpiresAt) <= 0 {
		t.Fatalf("registered %+v", web)
	}
	for _, field := range []string{`"service"`, `"id"`, `"address"`, `"port"`, `"labels"`, `"ttl"`, `"expires_at"`} {
		if !strings.Contains(body, field) {
			t.Errorf("response has no %s: %s", field, body)
		}
	}
	// An explicit port; an empty body means all defaults.
	if code, body = do(t, h, "POST", "/v1/services/api/instances", `{"address": "127.0.0.1", "port": 9999}`); code != 201 {
		t.Fatalf("explicit port: %d %s", code, body)
	}
	if code, body = do(t, h, "POST", "/v1/services/api/instances", ""); code != 201 {
		t.Fatalf("empty body: %d %s", code, body)
	}

	code, body = do(t, h, "PUT", "/v1/services/web/instances/"+web.ID, `{"ttl": "5m"}`)
	if renewed := decode[instanceJSON](t, body); code != 200 || renewed.TTL != "5m0s" || !renewed.ExpiresAt.After(web.ExpiresAt) {
		t.Fatalf("renew: %d %s", code, body)
	}
	if code, body = do(t, h, "PUT", "/v1/services/web/instances/"+web.ID, ""); code != 200 {
		t.Fatalf("renew without a body: %d %s", code, body)
	}

	code, body = do(t, h, "GET", "/v1/services", "")
	all := decode[struct{ Services []serviceJSON }](t, body)
	if code != 200 || len(all.Services) != 2 || all.Services[0].Name != "api" || len(all.Services[0].Instances) != 2 ||
		all.Services[0].Instances[0].Port != 9999 || all.Services[1].Name != "web" {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = do(t, h, "GET", "/v1/services/web", "")
	if one := decode[serviceJSON](t, body); code != 200 || one.Name != "web" || len(one.Instances) != 1 || one.Instances[0].ID != web.ID {
		t.Fatalf("get web: %d %s", code, body)
	}

	if code, body = do(t, h, "DELETE", "/v1/services/web/instances/"+web.ID, ""); code != http.StatusNoContent || body != "" {
		t.Fatalf("release: %d %q", code, body)
	}
	if code, body = do(t, h, "GET", "/v1/services/web", ""); code != 404 || !strings.Contains(body, `"error"`) {
		t.Fatalf("get after release: %d %s", code, body)
	}
}

func TestPortsErrors(t *testing.T) {
	// A range of one port that a listener holds: nothing to allocate.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := busy.Addr().(*net.TCPAddr).Port
	full := New(Options{Ports: ports.NewMemory(ports.Options{PortMin: bp, PortMax: bp}), Logger: quiet})
	if code, body := do(t, full, "POST", "/v1/services/web/instances", "{}"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no free port") {
		t.Fatalf("range exhausted: %d %s", code, body)
	}

	h := New(Options{Ports: ports.NewMemory(ports.Options{}), Logger: quiet})
	if code, body := do(t, h, "POST", "/v1/services/web/instances", `{"port": 8080}`); code != 201 {
		t.Fatalf("setup: %d %s", code, body)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "POST", "/v1/services/web/instances", `{"port": `, 400, "not valid JSON"},
		{"syntax error", "POST", "/v1/services/web/instances", `{port: 1}`, 400, "not valid JSON"},
		{"unknown field", "POST", "/v1/services/web/instances", `{"prot": 1}`, 400, `unknown field "prot"`},
		{"wrong type", "POST", "/v1/services/web/instances", `{"port": "80"}`, 400, `field "port" must be a number`},
		{"two values", "POST", "/v1/services/web/instances", `{} {}`, 400, "more than one JSON value"},
		{"body too large", "POST", "/v1/services/web/instances", `{"labels": {"x": "` + strings.Repeat("a", 70<<10) + `"}}`, 400, "over 64 KiB"},
		{"bad ttl", "POST", "/v1/services/web/instances", `{"ttl": "soon"}`, 400, `ttl "soon"`},
		{"ttl too long", "POST", "/v1/services/web/instances", `{"ttl": "1h"}`, 400, "ttl 1h0m0s: want 1s to 10m0s"},
		{"bad service", "POST", "/v1/services/Web_1/instances", `{}`, 400, "DNS label"},
		{"bad port", "POST", "/v1/services/web/instances", `{"port": 70000}`, 400, "port 70000"},
		{"bad address", "POST", "/v1/services/web/instances", `{"address": "example.com"}`, 400, `address "example.com"`},
		{"port taken", "POST", "/v1/services/api/instances", `{"port": 8080}`, 409, "port 8080 (held by web"},
		{"renew unknown", "PUT", "/v1/services/web/instances/nope", `{"ttl": "30s"}`, 404, "no such lease"},
		{"renew unknown field", "PUT", "/v1/services/web/instances/nope", `{"ttl": "30s", "x": 1}`, 400, `unknown field "x"`},
		{"release unknown", "DELETE", "/v1/services/web/instances/nope", "", 404, "release web/nope: no such lease"},
		{"unknown service", "GET", "/v1/services/nobody", "", 404, `service "nobody" has no live instances`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
			if e := decode[map[string]string](t, body); !strings.Contains(e["error"], tc.msg) {
				t.Fatalf("error %q, want it to say %q", e["error"], tc.msg)
			}
		})
	}
}

func TestPortsNotMountedWithoutRegistry(t *testing.T) {
	if code, _ := do(t, New(Options{Logger: quiet}), "GET", "/v1/services", ""); code != http.StatusNotFound {
		t.Fatalf("/v1/services without a registry: %d", code)
	}
}
