package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/cmd/internal/claudesettings"
)

// runHookCmd runs gavel's CLI in process and returns its stdout.
func runHookCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// fakeHookBinary is an executable named gavel-hook.
func fakeHookBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin", "gavel-hook")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const existingSettings = `{
  "model": "opus",
  "permissions": {"deny": ["Read(./.env)"]},
  "hooks": {
    "PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": "./check.sh"}]}
    ]
  },
  "env": {"A": "1"}
}
`

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in\n%s", err, b)
	}
	return v
}

func backups(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.bak*"))
	return m
}

func TestHookInstallUninstallCommand(t *testing.T) {
	project := t.TempDir()
	settings := filepath.Join(project, ".claude", "settings.json")
	if err := os.MkdirAll(filepath.Dir(settings), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(settings, []byte(existingSettings), 0o640); err != nil {
		t.Fatal(err)
	}
	bin := fakeHookBinary(t)
	disc := filepath.Join(t.TempDir(), "ports.json")

	out, err := runHookCmd(t, "hook", "install", "--project-dir", project, "--hook-binary", bin, "--discovery", disc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "installed gavel hooks for 9 events in "+settings) {
		t.Fatalf("output %q", out)
	}
	installed, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(settings)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's 0640 kept", st.Mode().Perm())
	}
	if b := backups(t, filepath.Dir(settings)); len(b) != 1 || b[0] != settings+".bak" {
		t.Fatalf("backups %v, want %s.bak", b, settings)
	} else if got, _ := os.ReadFile(b[0]); string(got) != existingSettings {
		t.Fatalf("backup holds %q", got)
	}
	var doc struct {
		Model string `json:"model"`
		Hooks map[string][]struct {
			Matcher string `json:"matcher"`
			Hooks   []struct {
				Type    string   `json:"type"`
				Command string   `json:"command"`
				Args    []string `json:"args"`
				Timeout int      `json:"timeout"`
			} `json:"hooks"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(installed, &doc); err != nil {
		t.Fatal(err)
	}
	for _, ev := range append(append([]string(nil), claudesettings.GatingEvents...), claudesettings.ObservationEvents...) {
		groups := doc.Hooks[ev]
		last := groups[len(groups)-1]
		h := last.Hooks[0]
		want := []string{"--discovery", disc, ev}
		if h.Type != "command" || h.Command != bin || !reflect.DeepEqual(h.Args, want) || h.Timeout != 5 {
			t.Errorf("%s: %+v, want %s %v with timeout 5", ev, h, bin, want)
		}
	}
	if pre := doc.Hooks["PreToolUse"]; len(pre) != 2 || pre[0].Hooks[0].Command != "./check.sh" || pre[1].Matcher != "*" {
		t.Errorf("PreToolUse groups %+v: want check.sh kept and gavel's group matching everything", pre)
	}
	// Top-level keys stay in order.
	if i, j, k := bytes.Index(installed, []byte(`"model"`)), bytes.Index(installed, []byte(`"hooks"`)), bytes.Index(installed, []byte(`"env"`)); !(i < j && j < k) {
		t.Errorf("top-level key order changed:\n%s", installed)
	}

	// Again: nothing to do, nothing written, no new backup.
	out, err = runHookCmd(t, "hook", "install", "--project-dir", project, "--hook-binary", bin, "--discovery", disc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "already installed") {
		t.Fatalf("second install said %q", out)
	}
	if again, _ := os.ReadFile(settings); !bytes.Equal(again, installed) {
		t.Fatal("the second install changed the file")
	}
	if b := backups(t, filepath.Dir(settings)); len(b) != 1 {
		t.Fatalf("backups after the second install: %v", b)
	}

	// Uninstall restores the original settings.
	out, err = runHookCmd(t, "hook", "uninstall", "--project-dir", project)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed gavel hooks from "+settings) {
		t.Fatalf("uninstall said %q", out)
	}
	restored, _ := os.ReadFile(settings)
	if !reflect.DeepEqual(decode(t, restored), decode(t, []byte(existingSettings))) {
		t.Fatalf("after uninstall:\n%s\nwant the equivalent of\n%s", restored, existingSettings)
	}
	if b := backups(t, filepath.Dir(settings)); len(b) != 2 {
		t.Fatalf("backups after uninstall: %v, want a second, timestamped one", b)
	}
	out, err = runHookCmd(t, "hook", "uninstall", "--project-dir", project)
	if err != nil || !strings.Contains(out, "no gavel hooks in") {
		t.Fatalf("second uninstall: %q, %v", out, err)
	}
	if again, _ := os.ReadFile(settings); !bytes.Equal(again, restored) {
		t.Fatal("the second uninstall changed the file")
	}
	if b := backups(t, filepath.Dir(settings)); len(b) != 2 {
		t.Fatalf("backups after the second uninstall: %v", b)
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(settings), ".*tmp*")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestHookInstallScopes(t *testing.T) {
	bin := fakeHookBinary(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	project := t.TempDir()
	for scope, want := range map[string]string{
		"project": filepath.Join(project, ".claude", "settings.json"),
		"local":   filepath.Join(project, ".claude", "settings.local.json"),
		"user":    filepath.Join(home, ".claude", "settings.json"),
	} {
		t.Run(scope, func(t *testing.T) {
			out, err := runHookCmd(t, "hook", "install", "--scope", scope, "--project-dir", project, "--hook-binary", bin, "--timeout", "2")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, want) {
				t.Fatalf("output %q does not name %s", out, want)
			}
			st, err := os.Stat(want)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o644 {
				t.Errorf("new file mode %v, want 0644", st.Mode().Perm())
			}
			if b := backups(t, filepath.Dir(want)); len(b) != 0 {
				t.Errorf("backups of a new file: %v", b)
			}
			b, _ := os.ReadFile(want)
			// A 2s hook timeout leaves gavel-hook 1s to decide.
			if !bytes.Contains(b, []byte(`"--timeout",`)) || !bytes.Contains(b, []byte(`"1s",`)) || !bytes.Contains(b, []byte(`"timeout": 2`)) {
				t.Fatalf("settings:\n%s", b)
			}
		})
	}
	if _, err := runHookCmd(t, "hook", "install", "--scope", "global", "--hook-binary", bin); err == nil || !strings.Contains(err.Error(), "--scope") {
		t.Fatalf("unknown scope: %v", err)
	}
	if _, err := runHookCmd(t, "hook", "install", "--project-dir", project, "--hook-binary", bin, "--timeout", "1"); err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("--timeout 1: %v", err)
	}
}

func TestHookInstallRefusesInvalidJSON(t *testing.T) {
	project := t.TempDir()
	settings := filepath.Join(project, ".claude", "settings.json")
	if err := os.MkdirAll(filepath.Dir(settings), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := "{\n  \"model\": \"opus\",\n}\n"
	if err := os.WriteFile(settings, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"install", "uninstall"} {
		args := []string{"hook", sub, "--project-dir", project}
		if sub == "install" {
			args = append(args, "--hook-binary", fakeHookBinary(t))
		}
		_, err := runHookCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), settings) || !strings.Contains(err.Error(), "line 3, column 1") {
			t.Fatalf("%s: err = %v, want it to name %s and line 3, column 1", sub, err, settings)
		}
		if got, _ := os.ReadFile(settings); string(got) != bad {
			t.Fatalf("%s changed an invalid file", sub)
		}
		entries, _ := os.ReadDir(filepath.Dir(settings))
		if len(entries) != 1 {
			t.Fatalf("%s left files beside the settings: %v", sub, entries)
		}
	}
}

func TestHookInstallFollowsSymlinks(t *testing.T) {
	project := t.TempDir()
	dotfiles := filepath.Join(t.TempDir(), "settings.json")
	if err := os.WriteFile(dotfiles, []byte(existingSettings), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(project, ".claude", "settings.json")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dotfiles, link); err != nil {
		t.Fatal(err)
	}
	if _, err := runHookCmd(t, "hook", "install", "--project-dir", project, "--hook-binary", fakeHookBinary(t)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	b, _ := os.ReadFile(dotfiles)
	if !bytes.Contains(b, []byte("gavel-hook")) {
		t.Fatal("the linked file was not edited")
	}
	if st, _ := os.Stat(dotfiles); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", st.Mode().Perm())
	}
}

func TestHookInstallFindsTheHookBinary(t *testing.T) {
	project := t.TempDir()
	t.Setenv("PATH", t.TempDir())
	_, err := runHookCmd(t, "hook", "install", "--project-dir", project)
	if err == nil || !strings.Contains(err.Error(), "gavel-hook not found") || !strings.Contains(err.Error(), "--hook-binary") {
		t.Fatalf("err = %v, want it to say gavel-hook is missing and how to fix it", err)
	}
	if _, err := os.Stat(filepath.Join(project, ".claude")); !os.IsNotExist(err) {
		t.Fatal("a failed install created .claude")
	}

	bin := fakeHookBinary(t)
	t.Setenv("PATH", filepath.Dir(bin))
	if _, err := runHookCmd(t, "hook", "install", "--project-dir", project); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(project, ".claude", "settings.json"))
	if !bytes.Contains(b, []byte(`"command": "`+bin+`"`)) {
		t.Fatalf("settings do not run %s from PATH:\n%s", bin, b)
	}

	notExec := filepath.Join(t.TempDir(), "gavel-hook")
	os.WriteFile(notExec, []byte("x"), 0o644)
	if _, err := runHookCmd(t, "hook", "install", "--project-dir", project, "--hook-binary", notExec); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("non-executable --hook-binary: %v", err)
	}
}

func TestHookInstallManaged(t *testing.T) {
	out, err := runHookCmd(t, "hook", "install", "--managed")
	if err != nil {
		t.Fatal(err)
	}
	want := claudesettings.Managed(claudesettings.ManagedOptions{URL: defaultManagedURL, HookCommand: defaultManagedHookBinary, Timeout: 5,
		ForwarderFlags: []string{"--url", defaultManagedURL}})
	if out != string(want) {
		t.Fatalf("managed settings:\n%s\nwant\n%s", out, want)
	}
	out, err = runHookCmd(t, "hook", "install", "--managed", "--url", "https://gavel.internal.example.com", "--hook-binary", "/opt/gavel/bin/gavel-hook")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, s := range []string{`"https://gavel.internal.example.com/*"`, `"url": "https://gavel.internal.example.com/v1/hooks/claude-code"`, `"command": "/opt/gavel/bin/gavel-hook"`, `"allowManagedHooksOnly": true`} {
		if !strings.Contains(out, s) {
			t.Errorf("managed settings lack %s", s)
		}
	}
}

// Claude Code runs hooks from the project directory, so by default the
// hooks name the discovery file of --data-dir by its absolute path.
func TestHookInstallPinsTheDiscoveryFile(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	bin := fakeHookBinary(t)
	project := t.TempDir()
	dataDir := filepath.Join(t.TempDir(), "data")
	if _, err := runHookCmd(t, "hook", "install", "--project-dir", project, "--hook-binary", bin, "--data-dir", dataDir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(project, ".claude", "settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(filepath.Join(dataDir, "ports.json"))
	if !bytes.Contains(b, []byte(`"--discovery",`)) || !bytes.Contains(b, want) {
		t.Fatalf("settings do not pin %s:\n%s", want, b)
	}
}
