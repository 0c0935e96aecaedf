package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/api"
	"github.com/gavel-dev/gavel/api/bundles"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/bundlesync"
	"github.com/gavel-dev/gavel/store/sqlite"
)

// replica is a gavel's bundle lifecycle and readiness, in process: a
// policy service following the store's activations, behind the real API.
func replica(t *testing.T, dbPath string) string {
	t.Helper()
	st, err := sqlite.Open(t.Context(), dbPath, sqlite.Options{Migrate: true, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := policy.NewService(policy.Options{})
	sync := bundlesync.New(bundlesync.Options{Store: st, Service: svc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sync.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(api.New(api.Options{
		Ready:   func() api.Status { return api.Status{Ready: svc.Revision() != "", Revision: svc.Revision()} },
		Bundles: bundles.Handler(bundles.Options{Store: st}),
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestActivateAcrossReplicas(t *testing.T) {
	db := filepath.Join(t.TempDir(), "gavel.db")
	a, b := replica(t, db), replica(t, db)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app", "p.rego"), "package app\n\n# METADATA\n# entrypoint: true\nallow := true\n")
	var out, errOut bytes.Buffer
	code := realMain(t.Context(), []string{"activate", "--replica", a, "--replica", b, "--token", "t", "--bundle", dir,
		"--marker", "app/bench", "--rounds", "4", "--timeout", "5s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), a) || !strings.Contains(out.String(), b) || strings.Count(out.String(), "\n") != 3 {
		t.Fatalf("report:\n%s", out.String())
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
