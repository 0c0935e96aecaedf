package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/store/storetest"
)

func TestStoreServeOpensSQLiteAndReportsIt(t *testing.T) {
	g := startGavel(t)
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Checks["store"] != "ok" {
		t.Errorf("/readyz store check = %q, want ok (checks %v)", st.Checks["store"], st.Checks)
	}
	fi, err := os.Stat(filepath.Join(g.info.DataDir, "gavel.db"))
	if err != nil {
		t.Fatalf("SQLite database not in the data dir: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("gavel.db mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStoreServeWithoutMigrateRefusesAnEmptyDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gavelBin, "serve", "--migrate=false", "--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("gavel serve --migrate=false on an empty database started:\n%s", out)
	}
	if !strings.Contains(string(out), "run `gavel migrate`") {
		t.Errorf("refusal does not say to run gavel migrate:\n%s", out)
	}
}

func runMigrate(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(append([]string{"migrate"}, args...))
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("gavel migrate %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func TestMigrateSQLite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if out := runMigrate(t, "--data-dir", dir); out != "applied migration 1\napplied migration 2\n" {
		t.Errorf("first run printed %q", out)
	}
	if out := runMigrate(t, "--data-dir", dir); out != "sqlite schema up to date\n" {
		t.Errorf("second run printed %q", out)
	}
	// A store then opens on it without migrating.
	sc := &storeConfig{enabled: true, maxConns: 1}
	st, err := sc.open(t.Context(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open after gavel migrate, --migrate=false: %v", err)
	}
	st.Close()
}

func TestMigratePostgres(t *testing.T) {
	u := storetest.PostgresSchema(t)
	// The URL comes from the environment, as GAVEL_POSTGRES_URL.
	t.Setenv("GAVEL_POSTGRES_URL", u)
	if out := runMigrate(t); out != "applied migration 1\napplied migration 2\napplied migration 3\n" {
		t.Errorf("first run printed %q", out)
	}
	if out := runMigrate(t); out != "postgres schema up to date\n" {
		t.Errorf("second run printed %q", out)
	}
}

func TestMigrateReportsAnUnreachableDatabase(t *testing.T) {
	cmd := newRootCmd()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"migrate", "--postgres-url", "postgres://gavel:pw-secret@127.0.0.1:1/gavel?connect_timeout=2"})
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "can't connect to postgres 127.0.0.1:1/gavel") || strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("gavel migrate on a closed port: %v", err)
	}
}
