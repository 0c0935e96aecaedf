package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gavel-dev/gavel/cmd/internal/discovery"
	"github.com/gavel-dev/gavel/policy/builtin"
)

// gavelBin and hookBin are the gavel and gavel-hook binaries, built once
// for the end-to-end tests.
var gavelBin, hookBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "gavel-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		gavelBin = filepath.Join(dir, "gavel")
		out, err := exec.Command("go", "build", "-o", gavelBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build gavel: %v\n%s", err, out)
			return 1
		}
		hookBin = filepath.Join(dir, "gavel-hook")
		out, err = exec.Command("go", "build", "-o", hookBin, "../gavel-hook").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build gavel-hook: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

var testKeys = map[string]builtin.Principal{
	"k-viewer": {Name: "vera", Roles: []string{"viewer"}},
	"k-editor": {Name: "ed", Roles: []string{"editor"}},
	"k-admin":  {Name: "ada", Roles: []string{"admin"}},
}

// writeBundle writes the default bundle with test keys as a tarball.
func writeBundle(t *testing.T, dir string) string {
	t.Helper()
	b, err := builtin.BundleWithKeys(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gavelProc is a running `gavel serve`.
type gavelProc struct {
	cmd  *exec.Cmd
	info discovery.Info
	logs *syncBuffer
	path string // discovery file
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func startGavel(t *testing.T, args ...string) *gavelProc {
	t.Helper()
	return startGavelCmd(t, "serve", args...)
}

// startGavelCmd runs gavel serve or gavel controlplane on free ports.
func startGavelCmd(t *testing.T, sub string, args ...string) *gavelProc {
	t.Helper()
	return startGavelIn(t, filepath.Join(t.TempDir(), "data"), sub, args...)
}

// startGavelIn runs gavel serve or gavel controlplane on free ports with
// the data dir given (a restart uses the same one).
func startGavelIn(t *testing.T, dataDir, sub string, args ...string) *gavelProc {
	t.Helper()
	base := []string{sub, "--http-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "text"}
	if sub == "serve" {
		base = append(base, "--authz-addr", "127.0.0.1:0")
	}
	args = append(base, args...)
	cmd := exec.Command(gavelBin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR=")
	p := &gavelProc{cmd: cmd, logs: newSyncBuffer(), path: discovery.Path(dataDir)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("gavel logs:\n%s", p.logs.String())
		}
	})
	waitFor(t, 20*time.Second, "gavel to publish its discovery file", func() bool {
		info, err := discovery.Read(p.path)
		if err != nil {
			return false
		}
		p.info = info
		return info.HTTPAddr != ""
	})
	waitFor(t, 10*time.Second, "gavel to be ready", func() bool {
		resp, err := http.Get("http://" + p.info.HTTPAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// waitFor polls cond, for a process outside the test's control, until it
// holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// nginxSkeleton wraps deploy/nginx/gavel.conf, the configuration users
// include, in a runnable nginx.conf.
const nginxSkeleton = `daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[2]s
}
`

// nginxConfig is deploy/nginx/gavel.conf pointed at this test's ports.
func nginxConfig(t *testing.T, dir string, port int, backend, gavelHTTP string) []byte {
	t.Helper()
	conf, err := os.ReadFile("../../deploy/nginx/gavel.conf")
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"server 127.0.0.1:8080;", "server "+backend+";",
		"server 127.0.0.1:8181;", "server "+gavelHTTP+";",
		"listen 8000;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
	)
	site := r.Replace(string(conf))
	for _, want := range []string{backend, gavelHTTP, fmt.Sprint(port)} {
		if !strings.Contains(site, want) {
			t.Fatalf("deploy/nginx/gavel.conf no longer has the address this test replaces with %s", want)
		}
	}
	return fmt.Appendf(nil, nginxSkeleton, dir, site)
}

// startNginx runs nginx from the machine with auth_request in front of
// backend, asking gavel at gavelHTTP. It skips when nginx is missing unless
// GAVEL_REQUIRE_NGINX is set (as CI does).
func startNginx(t *testing.T, backend, gavelHTTP string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, statErr := os.Stat(bin); statErr != nil {
			if os.Getenv("GAVEL_REQUIRE_NGINX") != "" {
				t.Fatal("nginx is required (GAVEL_REQUIRE_NGINX is set) but not installed")
			}
			t.Skip("nginx not installed (apt-get install nginx-light)")
		}
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, nginxConfig(t, dir, port, backend, gavelHTTP), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), logs)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "nginx to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

func TestNginxAuthRequest(t *testing.T) {
	g := startGavel(t, "--bundle", writeBundle(t, t.TempDir()))

	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Backend-Saw-Principal", r.Header.Get("X-Gavel-Principal"))
		fmt.Fprintf(w, "backend %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	proxy := startNginx(t, strings.TrimPrefix(backend.URL, "http://"), g.info.HTTPAddr)

	tests := []struct {
		name, method, path, key string
		status                  int
		principal               string // what the backend saw
		policyStatus            string // X-Gavel-Status, for denials nginx cannot carry
		reachesBackend          bool
	}{
		{"public route, no key", "GET", "/healthz", "", 200, "", "", true},
		{"viewer reads orders", "GET", "/api/v1/orders/42?expand=items", "k-viewer", 200, "vera", "", true},
		{"editor posts an order", "POST", "/api/v1/orders", "k-editor", 200, "ed", "", true},
		{"no key", "GET", "/api/v1/orders", "", 401, "", "", false},
		{"unknown key", "GET", "/api/v1/orders", "nope", 401, "", "", false},
		{"editor may not delete", "DELETE", "/api/v1/orders/1", "k-editor", 403, "", "", false},
		{"unknown route carries 404 in X-Gavel-Status", "GET", "/api/v2/things", "k-admin", 403, "", "404", false},
		{"method not allowed carries 405", "PATCH", "/api/v1/orders/1", "k-admin", 403, "", "405", false},
		{"admin deletes", "DELETE", "/api/v1/orders/1", "k-admin", 200, "ada", "", true},
		{"a client cannot name a rule as its policy", "DELETE", "/api/v1/orders/1", "x-gavel-policy:envoy/authz_test/test_admin_deletes", 401, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			req, err := http.NewRequestWithContext(t.Context(), tc.method, "http://"+proxy+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if name, value, ok := strings.Cut(tc.key, ":"); ok {
				req.Header.Set(name, value)
			} else if tc.key != "" {
				req.Header.Set("X-Api-Key", tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("X-Backend-Saw-Principal"); got != tc.principal {
				t.Errorf("backend saw principal %q, want %q", got, tc.principal)
			}
			if got := resp.Header.Get("X-Gavel-Status"); got != tc.policyStatus {
				t.Errorf("X-Gavel-Status %q, want %q", got, tc.policyStatus)
			}
			if id := resp.Header.Get("X-Gavel-Decision-Id"); len(id) != 36 {
				t.Errorf("X-Gavel-Decision-Id %q, want a UUID", id)
			}
			if reached := hits.Load() > before; reached != tc.reachesBackend {
				t.Errorf("request reached the backend: %v, want %v", reached, tc.reachesBackend)
			}
		})
	}
}

func checkRequest(method, path, key string) *authv3.CheckRequest {
	headers := map[string]string{":method": method, ":path": path}
	if key != "" {
		headers["x-api-key"] = key
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 41000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "orders.internal", Headers: headers,
		}},
	}}
}

func TestGRPCCheckAgainstBinary(t *testing.T) {
	g := startGavel(t, "--bundle", writeBundle(t, t.TempDir()))
	conn, err := grpc.NewClient(g.info.AuthzAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v", svc, resp, err)
		}
	}

	client := authv3.NewAuthorizationClient(conn)
	allow, err := client.Check(t.Context(), checkRequest("GET", "/api/v1/orders", "k-viewer"))
	if err != nil {
		t.Fatal(err)
	}
	if allow.Status.Code != 0 || allow.GetOkResponse() == nil {
		t.Fatalf("allow: %v", allow)
	}
	md := allow.DynamicMetadata.AsMap()
	if md["decision_id"] == "" || md["policy_revision"] != readyRevision(t, g) {
		t.Errorf("dynamic metadata %v, want decision_id and the active revision", md)
	}
	deny, err := client.Check(t.Context(), checkRequest("GET", "/api/v1/orders", ""))
	if err != nil {
		t.Fatal(err)
	}
	if deny.Status.Code != 7 || deny.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("deny: %v", deny)
	}
	// A request with no HTTP attributes is a denial in a normal response.
	bad, err := client.Check(t.Context(), &authv3.CheckRequest{})
	if err != nil {
		t.Fatalf("bad request answered with a gRPC error (Envoy could fail open on it): %v", err)
	}
	if bad.GetDeniedResponse().GetStatus().GetCode() != 400 {
		t.Fatalf("bad request: %v", bad)
	}
}

func readyRevision(t *testing.T, g *gavelProc) string {
	t.Helper()
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, rest, _ := strings.Cut(string(b), `"revision": "`)
	rev, _, _ := strings.Cut(rest, `"`)
	return rev
}

func TestReloadKeepsServingOnBadBundleAndStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	bundlePath := writeBundle(t, dir)
	g := startGavel(t, "--bundle", bundlePath)
	before := readyRevision(t, g)

	// A bundle with a syntax error replaces the file; SIGHUP must reject it.
	bad := filepath.Join(dir, "broken")
	if err := os.MkdirAll(filepath.Join(bad, "envoy", "authz"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "envoy", "authz", "authz.rego"), []byte("package envoy.authz\nallow if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(bundlePath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bad, bundlePath); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reload to be rejected", func() bool {
		return strings.Contains(g.logs.String(), "bundle rejected")
	})
	if !strings.Contains(g.logs.String(), "authz.rego:3") {
		t.Errorf("rejection does not name the file and line:\n%s", g.logs.String())
	}
	if after := readyRevision(t, g); after != before {
		t.Fatalf("revision changed from %s to %s after a rejected bundle", before, after)
	}

	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gavel exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gavel did not stop after SIGTERM")
	}
	if _, err := os.Stat(g.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("discovery file left behind: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(g.logs.String()))
	stopped := false
	for sc.Scan() {
		stopped = stopped || strings.Contains(sc.Text(), "msg=stopped")
	}
	if !stopped {
		t.Errorf("no 'stopped' log line:\n%s", g.logs.String())
	}
}
