package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/bundles"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/bundlesync"
	"github.com/gavel-dev/gavel/store/sqlite"
)

const goodPolicy = "package app\n\n# METADATA\n# entrypoint: true\nallow := input.user == \"ada\"\n"
const goodTest = "package app_test\n\nimport data.app\n\ntest_ada if app.allow with input as {\"user\": \"ada\"}\n\ntest_bob if not app.allow with input as {\"user\": \"bob\"}\n"

func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	fs := fstest.MapFS{}
	for p, c := range files {
		fs[p] = &fstest.MapFile{Data: []byte(c)}
	}
	b, err := policy.LoadFS("t", fs, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTarball writes entries as given, names unchecked (for hostile tars).
func rawTarball(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type server struct {
	*httptest.Server
	st store.Store
}

func newServer(t *testing.T, st store.Store, opts bundles.Options) *server {
	t.Helper()
	opts.Store = st
	if opts.MaxUpload == 0 {
		opts.MaxUpload = 1 << 20
	}
	h := bundles.Handler(opts)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), auth.Principal{Name: "sre-ana", Roles: []string{auth.RolePolicyAdmin}})))
	}))
	t.Cleanup(srv.Close)
	return &server{srv, st}
}

func (s *server) do(t *testing.T, method, path string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestUploadActivateRollbackDiff(t *testing.T) {
	srv := newServer(t, openStore(t, filepath.Join(t.TempDir(), "gavel.db")), bundles.Options{})
	v1 := tarball(t, map[string]string{"app/p.rego": goodPolicy, "app/p_test.rego": goodTest})
	code, body := srv.do(t, "POST", "/v1/bundles?source=v1.tar.gz", v1)
	if code != 201 || !strings.Contains(body, `"tests": 2`) {
		t.Fatalf("upload: %d %s", code, body)
	}
	var up bundles.UploadResult
	json.Unmarshal([]byte(body), &up)
	if code, body = srv.do(t, "POST", "/v1/bundles", v1); code != 200 || !strings.Contains(body, `"created": false`) {
		t.Fatalf("upload again: %d %s", code, body)
	}
	v2 := tarball(t, map[string]string{"app/p.rego": strings.Replace(goodPolicy, "ada", "ada\" ; true", 0) + "\n# v2\n", "app/p_test.rego": goodTest})
	code, body = srv.do(t, "POST", "/v1/bundles?source=v2.tar.gz", v2)
	var up2 bundles.UploadResult
	json.Unmarshal([]byte(body), &up2)
	if code != 201 {
		t.Fatalf("upload v2: %d %s", code, body)
	}

	if code, body = srv.do(t, "POST", "/v1/bundles/"+up.Revision[:8]+"/activate", nil); code != 200 || !strings.Contains(body, up.Revision) ||
		!strings.Contains(body, `"by": "sre-ana"`) {
		t.Fatalf("activate v1 by prefix: %d %s", code, body)
	}
	if code, body = srv.do(t, "POST", "/v1/bundles/"+up2.Revision+"/activate", nil); code != 200 {
		t.Fatalf("activate v2: %d %s", code, body)
	}
	if code, body = srv.do(t, "POST", "/v1/bundles/rollback", nil); code != 200 || !strings.Contains(body, up.Revision) {
		t.Fatalf("rollback to v1: %d %s", code, body)
	}
	code, body = srv.do(t, "GET", "/v1/bundles", nil)
	if code != 200 || !strings.Contains(body, `"active"`) || strings.Count(body, `"revision"`) != 3 {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = srv.do(t, "GET", "/v1/bundles/"+up.Revision[:10]+"/diff/"+up2.Revision[:10], nil)
	if code != 200 || !strings.Contains(body, "--- a/app/p.rego") || !strings.Contains(body, "+# v2") || strings.Contains(body, "p_test.rego") {
		t.Fatalf("diff: %d %s", code, body)
	}
	code, body = srv.do(t, "GET", "/v1/bundles/"+up.Revision, nil)
	if code != 200 || !strings.Contains(body, "/app/p_test.rego") || !strings.Contains(body, `"uploaded_by": "sre-ana"`) {
		t.Fatalf("get: %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/v1/bundles/abc/activate":                             400,
		"/v1/bundles/" + strings.Repeat("0", 12) + "/activate": 404,
	} {
		if code, body := srv.do(t, "POST", path, nil); code != want {
			t.Errorf("POST %s: %d %s, want %d", path, code, body, want)
		}
	}
}

func TestBadBundlesAreRejected(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "gavel.db"))
	priv, pub := rsaKeys(t)
	_ = priv
	verifier, err := policy.NewVerifier(pub, "", "")
	if err != nil {
		t.Fatal(err)
	}
	plain := newServer(t, st, bundles.Options{})
	signedOnly := newServer(t, st, bundles.Options{Check: bundles.CheckOptions{Verifier: verifier}})
	// A good bundle is active before the bad ones arrive.
	code, body := plain.do(t, "POST", "/v1/bundles", tarball(t, map[string]string{"app/p.rego": goodPolicy, "app/p_test.rego": goodTest}))
	var good bundles.UploadResult
	if err := json.Unmarshal([]byte(body), &good); err != nil || code != 201 {
		t.Fatalf("good upload: %d %s", code, body)
	}
	if code, body := plain.do(t, "POST", "/v1/bundles/"+good.Revision+"/activate", nil); code != 200 {
		t.Fatalf("activate: %d %s", code, body)
	}
	for _, tc := range []struct {
		name string
		srv  *server
		body []byte
		code int
		want []string
	}{
		{"syntax error", plain, tarball(t, map[string]string{"app/p.rego": "package app\n\nallow := if {\n"}), 422,
			[]string{`"kind": "compile"`, `"file": "app/p.rego"`, `"line": 3`}},
		{"failing test", plain, tarball(t, map[string]string{"app/p.rego": goodPolicy,
			"app/p_test.rego": "package app_test\n\nimport data.app\n\ntest_bob if app.allow with input as {\"user\": \"bob\"}\n"}), 422,
			[]string{`"kind": "test"`, `"file": "app/p_test.rego"`, `"line": 5`, "app_test.test_bob failed"}},
		{"unsigned where signatures are required", signedOnly, tarball(t, map[string]string{"app/p.rego": goodPolicy}), 422,
			[]string{`"kind": "signature"`, "not signed"}},
		{"path traversal", plain, rawTarball(t, "../../etc/evil.rego", "package evil"), 422,
			[]string{`"kind": "read"`, ".."}},
		{"not a tarball", plain, []byte("hello"), 422, []string{`"kind": "read"`}},
		{"too large", plain, bytes.Repeat([]byte{1}, 2<<20), 413, []string{"over the upload limit"}},
	} {
		code, body := tc.srv.do(t, "POST", "/v1/bundles", tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %s does not contain %s", tc.name, body, w)
			}
		}
	}
	if bs, _ := st.ListBundles(context.Background()); len(bs) != 1 {
		t.Fatalf("%d bundles stored, want only the good one", len(bs))
	}
	if a, err := st.Active(context.Background()); err != nil || a.Revision != good.Revision {
		t.Fatalf("active after the rejections: %+v %v, want %s still", a, err, good.Revision)
	}

	// A signed bundle passes.
	b, _ := policy.LoadFS("t", fstest.MapFS{"app/p.rego": {Data: []byte(goodPolicy)}}, policy.Limits{})
	signed, err := policy.Sign(b, priv, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	signed.WriteTarGz(&buf)
	if code, body := signedOnly.do(t, "POST", "/v1/bundles", buf.Bytes()); code != 201 || !strings.Contains(body, `"signed": true`) {
		t.Fatalf("signed upload: %d %s", code, body)
	}
}

// Two replicas on one store: an activation through one reaches the other's
// engine, which serves the new revision; a bundle that was stored but
// cannot compile here leaves the previous one serving.
func TestActivationReachesEveryReplica(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gavel.db")
	a, b := openStore(t, path), openStore(t, path)
	srvA := newServer(t, a, bundles.Options{})
	svcB := policy.NewService(policy.Options{})
	syncB := bundlesync.New(bundlesync.Options{Store: b, Service: svcB})
	if ok, err := syncB.Start(t.Context()); ok || err != nil {
		t.Fatalf("start with nothing active: %v %v", ok, err)
	}
	go syncB.Run(t.Context())
	time.Sleep(100 * time.Millisecond) // let the watch open before activating

	code, body := srvA.do(t, "POST", "/v1/bundles", tarball(t, map[string]string{"app/p.rego": goodPolicy}))
	var up bundles.UploadResult
	json.Unmarshal([]byte(body), &up)
	if code != 201 {
		t.Fatal(body)
	}
	start := time.Now()
	if code, body := srvA.do(t, "POST", "/v1/bundles/"+up.Revision+"/activate", nil); code != 200 {
		t.Fatal(body)
	}
	for svcB.Revision() != up.Revision {
		if time.Since(start) > time.Second {
			t.Fatalf("replica B still serves %q 1 s after the activation", svcB.Revision())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("activation reached replica B in %v", time.Since(start))
	d, err := svcB.Decide(t.Context(), "app/allow", mustInput(t, map[string]any{"user": "ada"}))
	if err != nil || !d.Allowed() {
		t.Fatalf("replica B decides %+v, %v", d, err)
	}

	// A new replica starting later applies the active revision at once.
	svcC := policy.NewService(policy.Options{})
	if ok, err := bundlesync.New(bundlesync.Options{Store: openStore(t, path), Service: svcC}).Start(t.Context()); !ok || err != nil ||
		svcC.Revision() != up.Revision {
		t.Fatalf("replica C at start: %v %v %q", ok, err, svcC.Revision())
	}
}

func mustInput(t *testing.T, v map[string]any) policy.Input {
	in, err := policy.NewInput(v)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func rsaKeys(t *testing.T) (priv, pub []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
