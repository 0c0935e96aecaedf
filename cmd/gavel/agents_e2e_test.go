package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/cmd/internal/discovery"
)

type hookRun struct {
	stdout, stderr string
	code           int
}

// runHook runs a hook command as Claude Code does: the payload on stdin,
// the project directory in CLAUDE_PROJECT_DIR.
func runHook(t *testing.T, project string, argv []string, payload string) hookRun {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = project
	cmd.Env = append(os.Environ(), "CLAUDE_PROJECT_DIR="+project, "XDG_RUNTIME_DIR=", "GAVEL_URL=", "GAVEL_TOKEN=",
		"GAVEL_SPOOL_DIR="+filepath.Join(t.TempDir(), "spool"))
	cmd.Stdin = strings.NewReader(payload)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return hookRun{out.String(), errb.String(), code}
}

// installedCommand is the command and args `gavel hook install` wrote for
// an event.
func installedCommand(t *testing.T, settings []byte, event string) []string {
	t.Helper()
	var s struct {
		Hooks map[string][]struct {
			Hooks []struct {
				Command string   `json:"command"`
				Args    []string `json:"args"`
			} `json:"hooks"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(settings, &s); err != nil {
		t.Fatal(err)
	}
	for _, g := range s.Hooks[event] {
		for _, h := range g.Hooks {
			if filepath.Base(h.Command) == "gavel-hook" {
				return append([]string{h.Command}, h.Args...)
			}
		}
	}
	t.Fatalf("no gavel-hook command for %s in\n%s", event, settings)
	return nil
}

// TestClaudeCodeHooksEndToEnd is the README's three lines: gavel serve,
// gavel hook install, and Claude Code running the installed commands. The
// default policy governs them, and when gavel is gone the gating events
// fail closed.
func TestClaudeCodeHooksEndToEnd(t *testing.T) {
	g := startGavel(t)
	if g.info.HookToken == "" {
		t.Fatal("the discovery file has no hook token")
	}
	st, err := os.Stat(filepath.Join(g.info.DataDir, hookTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("hook token file: %v, %v (want mode 0600)", st, err)
	}

	project := t.TempDir()
	out, errOut, code := runGavel(t, "", "hook", "install", "--project-dir", project, "--hook-binary", hookBin,
		"--discovery", g.path)
	if code != 0 {
		t.Fatalf("hook install: %d %s %s", code, out, errOut)
	}
	settings, err := os.ReadFile(filepath.Join(project, ".claude", "settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	pre := installedCommand(t, settings, "PreToolUse")
	perm := installedCommand(t, settings, "PermissionRequest")
	prompt := installedCommand(t, settings, "UserPromptSubmit")

	hook := func(event, rest string) string {
		return `{"session_id":"s1","transcript_path":"/tmp/t.jsonl","cwd":"` + project + `","permission_mode":"default","hook_event_name":"` + event + `",` + rest + `}`
	}
	r := runHook(t, project, pre, hook("PreToolUse", `"tool_name":"Bash","tool_input":{"command":"rm -rf ~"},"tool_use_id":"t1"`))
	if r.code != 0 || !strings.Contains(r.stdout, `"permissionDecision":"deny"`) || !strings.Contains(r.stdout, "shell.rm-home") {
		t.Fatalf("rm -rf ~: %+v", r)
	}
	r = runHook(t, project, pre, hook("PreToolUse", `"tool_name":"Bash","tool_input":{"command":"go test ./..."},"tool_use_id":"t2"`))
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("go test: want no opinion, got %+v", r)
	}
	r = runHook(t, project, pre, hook("PreToolUse", `"tool_name":"Write","tool_input":{"file_path":"/etc/passwd","content":"x"},"tool_use_id":"t3"`))
	if r.code != 0 || !strings.Contains(r.stdout, "files.outside-project") {
		t.Fatalf("write outside the project (CLAUDE_PROJECT_DIR reaches the policy): %+v", r)
	}
	r = runHook(t, project, perm, hook("PermissionRequest", `"tool_name":"Bash","tool_input":{"command":"git push -f origin main"}`))
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("permission request that asks: want the dialog (no opinion), got %+v", r)
	}
	r = runHook(t, project, prompt, hook("UserPromptSubmit", `"prompt":"use token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"`))
	if r.code != 0 || !strings.Contains(r.stdout, `"decision":"block"`) {
		t.Fatalf("prompt with a secret: %+v", r)
	}

	// The validation service answers with the same token.
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.info.HTTPAddr+"/v1/validate",
		strings.NewReader(`{"files":[{"path":"k.pem","content":"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"}]}`))
	req.Header.Set("Authorization", "Bearer "+g.info.HookToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok": false`) || !strings.Contains(string(body), "secret.private-key") {
		t.Fatalf("validate: %d %s", resp.StatusCode, body)
	}

	// gavel goes away (its discovery file with it; keep a copy the hooks
	// still point at): gating events fail closed, PermissionRequest denies.
	saved, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	if err := os.WriteFile(g.path, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := discovery.Read(g.path); err != nil {
		t.Fatal(err)
	}
	r = runHook(t, project, pre, hook("PreToolUse", `"tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"t4"`))
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "governance unavailable") {
		t.Fatalf("PreToolUse with gavel down: %+v, want exit 2", r)
	}
	r = runHook(t, project, perm, hook("PermissionRequest", `"tool_name":"Bash","tool_input":{"command":"ls"}`))
	if r.code != 0 || !strings.Contains(r.stdout, `"behavior":"deny"`) {
		t.Fatalf("PermissionRequest with gavel down: %+v, want a deny", r)
	}
}
