package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Registrations survive a restart: the lease comes back with its id and
// port, and can be renewed and released.
func TestPortLeasesSurviveARestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	g := startGavelIn(t, dataDir, "serve")
	useAdminKey(t, g) // kept in the store: it still works after the restart
	out, errOut, code := runGavel(t, "", "ports", "register", "orders", "--ttl", "5m", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("register: %d %s %s", code, out, errOut)
	}
	var lease struct {
		ID   string `json:"id"`
		Port int    `json:"port"`
	}
	if err := json.Unmarshal([]byte(out), &lease); err != nil || lease.ID == "" {
		t.Fatalf("register printed %q: %v", out, err)
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.cmd.Wait()

	startGavelIn(t, dataDir, "serve")
	out, errOut, code = runGavel(t, "", "ports", "list", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, lease.ID) || !strings.Contains(out, "orders") {
		t.Fatalf("after a restart, list: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := runGavel(t, "", "ports", "renew", "orders", lease.ID, "--data-dir", dataDir); code != 0 {
		t.Fatalf("renew a restored lease: %s", errOut)
	}
	if _, errOut, code := runGavel(t, "", "ports", "release", "orders", lease.ID, "--data-dir", dataDir); code != 0 {
		t.Fatalf("release a restored lease: %s", errOut)
	}
}
