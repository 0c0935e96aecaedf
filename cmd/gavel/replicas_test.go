package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gavel-dev/gavel/policy/builtin"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/storetest"
)

// writeBuiltinPlus writes the built-in bundle to a directory with one more
// data file, so its revision is new.
func writeBuiltinPlus(t *testing.T, marker string) string {
	t.Helper()
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for p, data := range b.Files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "gavel", "release"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gavel", "release", "data.json"), []byte(`{"marker":"`+marker+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Two gavel serve replicas on one PostgreSQL and one Redis: a bundle pushed
// and activated through one is served by the other within a second, a
// rollback too, and a decision made on one reaches a WebSocket client of
// the other. The audit trail on either holds the decisions of both.
func TestTwoReplicasShareBundlesEventsAndAudit(t *testing.T) {
	pg := storetest.PostgresSchema(t)
	shared := []string{"--postgres-url", pg, "--redis-addr", "127.0.0.1:6379"}
	a := startGavelIn(t, filepath.Join(t.TempDir(), "a"), "serve", shared...)
	b := startGavelIn(t, filepath.Join(t.TempDir(), "b"), "serve", shared...)
	builtinRev := readyRevision(t, b)

	out, errOut, code := runGavel(t, "", "keys", "create", "--postgres-url", pg, "--name", "sre", "--role", "policy-admin", "--role", "viewer")
	if code != 0 {
		t.Fatalf("keys create: %s", errOut)
	}
	key := strings.TrimSpace(out)

	// A WebSocket client on B, for decisions.
	ws, _, err := dialEvents(t, b, "?type=decision&source=hook", b.info.ViewerToken)
	if err != nil {
		t.Fatal(err)
	}

	dir := writeBuiltinPlus(t, "v2")
	out, errOut, code = runGavel(t, "", "policy", "push", dir, "--server", a.info.HTTPAddr, "--token", key)
	if code != 0 || !strings.Contains(out, "tests pass") {
		t.Fatalf("push: %d\n%s\n%s", code, out, errOut)
	}
	var rev string
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "stored as "); i >= 0 {
			rev = strings.TrimSpace(line[i+len("stored as "):])
		}
	}
	if len(rev) != 64 {
		t.Fatalf("no revision in %q", out)
	}
	start := time.Now()
	if out, errOut, code = runGavel(t, "", "policy", "activate", rev[:10], "--server", a.info.HTTPAddr, "--token", key); code != 0 {
		t.Fatalf("activate: %s %s", out, errOut)
	}
	for readyRevision(t, b) != rev {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("replica B serves %s %v after the activation on A", readyRevision(t, b), time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("activation on A served by B after %v (includes the gavel policy activate process)", time.Since(start))
	for readyRevision(t, a) != rev {
		if time.Since(start) > 2*time.Second {
			t.Fatal("replica A does not serve its own activation")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Rollback reaches both as well.
	if out, errOut, code = runGavel(t, "", "policy", "rollback", "--server", b.info.HTTPAddr, "--token", key); code != 0 {
		// Only one revision was ever activated: the built-in one was never stored.
		if !strings.Contains(errOut, "nothing to roll back") {
			t.Fatalf("rollback: %s %s", out, errOut)
		}
	}
	_ = builtinRev

	// A decision on A reaches the client on B, through Redis.
	id := postHook(t, a, "rm -rf ~")
	for {
		var e store.Event
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, msg, err := ws.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("no decision event on B for %s: %v", id, err)
		}
		if json.Unmarshal(msg, &e) == nil && strings.Contains(string(e.Data), id) {
			break
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")

	// B's audit trail has A's decision (written through A's audit writer).
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.info.HTTPAddr+"/v1/decisions/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(body), "shell.rm-home") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision %s not in the audit trail: %d %s", id, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
