package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var units = []struct{ file, command string }{
	{"systemd/gavel.service", "serve"},
	{"systemd/gavel-authz.service", "authz"},
}

// unit is a parsed unit file: section -> key -> values, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not key=value in a section", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSystemdUnits checks that each unit runs its gavel command with the
// hardening options on, its data in its state directory.
func TestSystemdUnits(t *testing.T) {
	hardening := map[string]string{
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"Restart":                 "on-failure",
		"EnvironmentFile":         "-/etc/gavel/gavel.env",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for _, tc := range units {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			u := parseUnit(t, tc.file)
			svc := u["Service"]
			if svc == nil || u["Unit"] == nil || u["Install"] == nil {
				t.Fatalf("want [Unit], [Service] and [Install] sections, have %v", u)
			}
			for k, want := range hardening {
				if v := svc[k]; len(v) != 1 || v[0] != want {
					t.Errorf("%s=%v, want %q", k, v, want)
				}
			}
			if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
				t.Errorf("SystemCallFilter=%v, want @system-service", svc["SystemCallFilter"])
			}
			if dyn := svc["DynamicUser"]; (len(dyn) != 1 || dyn[0] != "yes") && len(svc["User"]) == 0 {
				t.Error("neither DynamicUser=yes nor a User: the service would run as root")
			}
			start := strings.Fields(strings.Join(svc["ExecStart"], " "))
			if len(start) < 2 || filepath.Base(start[0]) != "gavel" || start[1] != tc.command {
				t.Fatalf("ExecStart=%v, want gavel %s", start, tc.command)
			}
			state := svc["StateDirectory"]
			if len(state) != 1 || parseFlags(t, start[2:])["data-dir"] != "/var/lib/"+state[0] {
				t.Errorf("--data-dir is not the StateDirectory %v: ProtectSystem=strict leaves it read-only", state)
			}
		})
	}
}

// TestSystemdVerify runs systemd-analyze verify (syntax, unknown keys,
// dependencies) and security (an exposure score of at most 2.0) on the
// units. It skips when systemd-analyze is not installed, unless
// GAVEL_REQUIRE_SYSTEMD is set.
func TestSystemdVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("GAVEL_REQUIRE_SYSTEMD") != "" {
			t.Fatal("GAVEL_REQUIRE_SYSTEMD is set and systemd-analyze is not installed")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd)")
	}
	// verify checks that ExecStart's binary exists: point the units at a
	// stand-in.
	dir := t.TempDir()
	bin := filepath.Join(dir, "gavel")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, tc := range units {
		src, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(tc.file))
		if err := os.WriteFile(p, bytes.ReplaceAll(src, []byte("/usr/local/bin/gavel"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// verify reports unknown keys and bad values on stderr and still exits
	// 0: any output is a failure.
	out, err := exec.CommandContext(t.Context(), tool, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, p := range paths {
		out, err := exec.CommandContext(t.Context(), tool, "security", "--offline=yes", "--threshold=20", "--no-pager", p).CombinedOutput()
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Errorf("systemd-analyze security %s: %v: %s", filepath.Base(p), err, lines[len(lines)-1])
		}
	}
}
