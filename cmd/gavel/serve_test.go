package main

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestListenFallsBackFromATakenDefault(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	ln, err := listen(log, "ext_authz", taken.Addr().String(), true)
	if err != nil {
		t.Fatalf("fallback listen: %v", err)
	}
	defer ln.Close()
	if ln.Addr().String() == taken.Addr().String() {
		t.Fatal("bound the taken address")
	}
	if !strings.Contains(logs.String(), "default port taken") {
		t.Errorf("no warning logged: %s", logs.String())
	}

	// An address the user chose is never silently replaced.
	if _, err := listen(log, "ext_authz", taken.Addr().String(), false); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("explicit taken address: err = %v, want address already in use", err)
	}
}

// configCmd is a command with the serve flags, to test how they are bound.
func configCmd() (*cobra.Command, *serveConfig) {
	cfg := &serveConfig{}
	cmd := &cobra.Command{Use: "serve", RunE: func(*cobra.Command, []string) error { return nil }, PreRunE: bindConfig}
	cfg.flags(cmd)
	cmd.Flags().StringVar(&cfg.httpAddr, "http-addr", defaultHTTPAddr, "")
	return cmd, cfg
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gavel.yaml")
	if err := os.WriteFile(file, []byte("cache-size: 10\ncache-ttl: 5s\nauthz-addr: 127.0.0.1:7000\ndry-run: [a/b, c/d]\nno-cache: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GAVEL_CACHE_SIZE", "20")
	cmd, cfg := configCmd()
	cmd.SetArgs([]string{"--config", file, "--authz-addr", "127.0.0.1:7001"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if cfg.authzAddr != "127.0.0.1:7001" {
		t.Errorf("authz-addr = %s: the flag must win", cfg.authzAddr)
	}
	if cfg.cacheSize != 20 {
		t.Errorf("cache-size = %d: the environment must win over the file", cfg.cacheSize)
	}
	if cfg.cacheTTL != 5*time.Second || !cfg.noCache {
		t.Errorf("cache-ttl = %v, no-cache = %v: the file must fill the rest", cfg.cacheTTL, cfg.noCache)
	}
	if strings.Join(cfg.dryRun, ",") != "a/b,c/d" {
		t.Errorf("dry-run = %v", cfg.dryRun)
	}
	if cfg.httpAddr != defaultHTTPAddr {
		t.Errorf("http-addr = %s, want the default", cfg.httpAddr)
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name, file, env, want string
	}{
		{"unknown key", "cache-sise: 10\n", "", `config key "cache-sise" is not a flag`},
		{"bad value in file", "cache-size: lots\n", "", "config key cache-size"},
		{"bad env", "", "many", "GAVEL_CACHE_SIZE"},
		{"not yaml", "cache-size: [\n", "", "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{}
			if tc.file != "" {
				file := filepath.Join(t.TempDir(), "gavel.yaml")
				if err := os.WriteFile(file, []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", file)
			}
			if tc.env != "" {
				t.Setenv("GAVEL_CACHE_SIZE", tc.env)
			}
			cmd, _ := configCmd()
			cmd.SetArgs(args)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadBundleWithKeys(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, []byte(`{"k1": {"name": "one", "roles": ["viewer"]}, "sha256:`+strings.Repeat("ab", 32)+`": {"name": "two", "roles": []}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := loadBundleWithKeys("", keys)
	if err != nil {
		t.Fatal(err)
	}
	table := string(b.Files["/gavel/http/api_keys/data.json"])
	if strings.Contains(table, `"k1"`) || !strings.Contains(table, strings.Repeat("ab", 32)) {
		t.Errorf("key table %s: keys must be stored hashed, hashed keys as given", table)
	}
	if _, err := loadBundleWithKeys(dir, keys); err == nil {
		t.Error("--api-keys with --bundle accepted")
	}
	if err := os.WriteFile(keys, []byte(`{"k1": {"roles": ["viewer"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadBundleWithKeys("", keys); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("key without a name: err = %v", err)
	}
}

func TestNewPortRegistry(t *testing.T) {
	tests := []struct {
		name, portRange string
		ttl             time.Duration
		want            string // error text; "" for none
		off             bool
	}{
		{"default", "20000-29999", 30 * time.Second, "", false},
		{"off for authz", "", 0, "", true},
		{"bad range", "29999-20000", 30 * time.Second, "--port-range", false},
		{"short ttl", "20000-29999", time.Millisecond, "--lease-ttl", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := newPortRegistry(&serveConfig{portRange: tc.portRange, leaseTTL: tc.ttl})
			switch {
			case tc.want != "":
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want it to mention %s", err, tc.want)
				}
			case err != nil:
				t.Fatal(err)
			case (reg == nil) != tc.off:
				t.Fatalf("registry = %v, want off=%v", reg, tc.off)
			}
		})
	}
}
