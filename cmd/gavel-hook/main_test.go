package main

import (
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/cmd/internal/discovery"
)

// hookBin is the gavel-hook binary built once for the tests.
var hookBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "gavel-hook-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		hookBin = filepath.Join(dir, "gavel-hook")
		out, err := exec.Command("go", "build", "-o", hookBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build gavel-hook: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// payload reads a hook input from testdata.
func payload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventPayload is a minimal hook input for events without a testdata file.
func eventPayload(event string) []byte {
	return []byte(`{"session_id":"abc123","transcript_path":"/tmp/t.jsonl","cwd":"/home/user/my-project","hook_event_name":"` + event + `"}` + "\n")
}

// payloadFor is the testdata payload for the events that have one.
func payloadFor(t testing.TB, event string) []byte {
	files := map[string]string{
		"PreToolUse":        "pretooluse_bash",
		"PermissionRequest": "permissionrequest",
		"UserPromptSubmit":  "userpromptsubmit",
		"PostToolUse":       "posttooluse",
		"Stop":              "stop",
		"SessionEnd":        "sessionend",
	}
	if f, ok := files[event]; ok {
		return payload(t, f)
	}
	return eventPayload(event)
}

type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// hookRun is one invocation of the binary.
type hookRun struct {
	args  []string
	env   map[string]string
	stdin []byte
	dir   string // working directory (default: an empty temp dir)
}

// run runs gavel-hook with a clean environment: only PATH, HOME (a temp
// dir) and what r.env adds.
func (r hookRun) run(t testing.TB) result {
	t.Helper()
	cmd := exec.Command(hookBin, r.args...)
	home := t.TempDir()
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOME": home}
	for k, v := range r.env {
		env[k] = v
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = r.dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Stdin = bytes.NewReader(r.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run gavel-hook: %v", err)
	}
	return res
}

// request is what a test server received.
type request struct {
	method, path string
	header       http.Header
	body         []byte
}

// recorder is a test gavel: it records every request and answers with
// answer (nil: 200 with an empty body).
type recorder struct {
	mu   sync.Mutex
	reqs []request
	srv  *httptest.Server
}

func newRecorder(t testing.TB, answer func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, request{r.Method, r.URL.Path, r.Header.Clone(), body})
		rec.mu.Unlock()
		if answer != nil {
			answer(w, r)
		}
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

// replays and live split the recorded requests by X-Gavel-Replay.
func (rec *recorder) split() (live, replays []request) {
	for _, r := range rec.requests() {
		if r.header.Get("X-Gavel-Replay") != "" {
			replays = append(replays, r)
		} else {
			live = append(live, r)
		}
	}
	return live, replays
}

func answerWith(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestHookForwardsDecision(t *testing.T) {
	tests := []struct {
		name, event, answer string
	}{
		{"PreToolUse allow", "PreToolUse", `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"read-only command"}}`},
		{"PreToolUse deny", "PreToolUse", `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"Database writes are not allowed"}}` + "\n"},
		{"PreToolUse ask", "PreToolUse", "{\n  \"hookSpecificOutput\": {\"hookEventName\": \"PreToolUse\", \"permissionDecision\": \"ask\", \"permissionDecisionReason\": \"DDL needs a human <review> & sign-off\"}\n}\n"},
		{"PermissionRequest allow", "PermissionRequest", `{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"allow","updatedInput":{"command":"npm run lint"}}}}`},
		{"UserPromptSubmit block", "UserPromptSubmit", `{"decision":"block","reason":"Prompts mentioning credentials are blocked"}`},
		{"PostToolUse context", "PostToolUse", `{"hookSpecificOutput":{"hookEventName":"PostToolUse","additionalContext":"audited"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, answerWith(200, tc.answer))
			in := payloadFor(t, tc.event)
			spool := t.TempDir()
			res := hookRun{
				args:  []string{"--url", rec.srv.URL, "--token", "s3cret", tc.event},
				env:   map[string]string{"CLAUDE_PROJECT_DIR": "/home/user/my-project", "GAVEL_SPOOL_DIR": spool},
				stdin: in,
			}.run(t)
			if res.code != 0 || res.stdout != tc.answer || res.stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0, %q, no stderr", res.code, res.stdout, res.stderr, tc.answer)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != "POST" || r.path != "/v1/hooks/claude-code" {
				t.Errorf("%s %s, want POST /v1/hooks/claude-code", r.method, r.path)
			}
			if !bytes.Equal(r.body, in) {
				t.Errorf("body changed on the way:\n got %q\nwant %q", r.body, in)
			}
			for k, want := range map[string]string{
				"Content-Type":        "application/json",
				"Authorization":       "Bearer s3cret",
				"X-Gavel-Agent":       "claude-code",
				"X-Gavel-Transport":   "command-forwarder",
				"X-Gavel-Project-Dir": "/home/user/my-project",
				"X-Gavel-Replay":      "",
			} {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if r.header.Get("X-Gavel-Forwarder-Version") == "" {
				t.Error("no X-Gavel-Forwarder-Version")
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Errorf("a successful call left %d files in the spool dir", len(entries))
			}
		})
	}
}

func TestHookNoOpinion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{{"200 empty", 200, ""}, {"204", 204, ""}, {"200 whitespace", 200, " \n"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, answerWith(tc.status, tc.body))
			res := hookRun{
				args:  []string{"PreToolUse"},
				env:   map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_TOKEN": "tok", "GAVEL_SPOOL_DIR": t.TempDir()},
				stdin: payload(t, "pretooluse_bash"),
			}.run(t)
			if res.code != 0 || res.stdout != "" || res.stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and no output", res.code, res.stdout, res.stderr)
			}
			if n := len(rec.requests()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

// failure is a way for gavel to be unavailable.
type failure struct {
	name   string
	url    func(t *testing.T) string
	reason string // in the message
}

func failures() []failure {
	serve := func(h func(http.ResponseWriter, *http.Request)) func(t *testing.T) string {
		return func(t *testing.T) string { return newRecorder(t, h).srv.URL }
	}
	return []failure{
		{"down", func(t *testing.T) string { return closedURL(t) }, "connection refused"},
		{"500", serve(answerWith(500, `{"error":"boom"}`)), "HTTP 500"},
		{"401", serve(answerWith(401, `{"error":"bad token"}`)), "HTTP 401"},
		{"not JSON", serve(answerWith(200, "ok\n")), "not a JSON object"},
		{"JSON array", serve(answerWith(200, `[{"decision":"allow"}]`)), "not a JSON object"},
		{"broken JSON", serve(answerWith(200, `{"decision":`)), "not a JSON object"},
		{"slow", serve(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}), "no answer"},
	}
}

const failPrefix = "gavel-hook: governance unavailable: "

func TestHookGatingEventsFailClosed(t *testing.T) {
	events := []string{"PreToolUse", "UserPromptSubmit", "UserPromptExpansion", "PreCompact", "ConfigChange", "TaskCreated", "Elicitation", "ElicitationResult"}
	for _, f := range failures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			url := f.url(t)
			for _, event := range events {
				spool := t.TempDir()
				res := hookRun{
					args:  []string{"--timeout", "300ms", event},
					env:   map[string]string{"GAVEL_URL": url, "GAVEL_TOKEN": "tok", "GAVEL_SPOOL_DIR": spool},
					stdin: payloadFor(t, event),
				}.run(t)
				if res.code != 2 || res.stdout != "" || !strings.HasPrefix(res.stderr, failPrefix) || !strings.Contains(res.stderr, f.reason) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2, no stdout, %q naming %q", event, res.code, res.stdout, res.stderr, failPrefix, f.reason)
				}
				if strings.Contains(res.stderr, "tok") {
					t.Errorf("%s: stderr shows the token: %q", event, res.stderr)
				}
				if _, err := os.Stat(filepath.Join(spool, spoolName)); err == nil {
					t.Errorf("%s: a blocked gating event was spooled", event)
				}
			}
		})
	}
}

func TestHookPermissionRequestDeniesOnFailure(t *testing.T) {
	for _, f := range failures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			res := hookRun{
				args:  []string{"--timeout", "300ms", "PermissionRequest"},
				env:   map[string]string{"GAVEL_URL": f.url(t), "GAVEL_TOKEN": "tok", "GAVEL_SPOOL_DIR": t.TempDir()},
				stdin: payload(t, "permissionrequest"),
			}.run(t)
			if res.code != 0 {
				t.Fatalf("exit %d, want 0 (Claude Code ignores exit 2 on PermissionRequest)", res.code)
			}
			reason := strings.TrimSuffix(strings.TrimPrefix(res.stderr, failPrefix), "\n")
			if !strings.HasPrefix(res.stderr, failPrefix) || !strings.Contains(reason, f.reason) {
				t.Fatalf("stderr %q, want %q naming %q", res.stderr, failPrefix, f.reason)
			}
			want := `{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"deny","message":"governance unavailable: ` + reason + `"}}}` + "\n"
			if res.stdout != want {
				t.Fatalf("stdout\n %s\nwant\n %s", res.stdout, want)
			}
		})
	}
}

func TestHookStopProceedsOnFailure(t *testing.T) {
	url := closedURL(t)
	for _, event := range []string{"Stop", "SubagentStop"} {
		res := hookRun{
			args:  []string{event},
			env:   map[string]string{"GAVEL_URL": url, "GAVEL_SPOOL_DIR": t.TempDir()},
			stdin: payloadFor(t, event),
		}.run(t)
		if res.code != 0 || res.stdout != "" || !strings.HasPrefix(res.stderr, failPrefix) || !strings.Contains(res.stderr, event+" proceeds") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0, no stdout, a note that it proceeds", event, res.code, res.stdout, res.stderr)
		}
	}
}

func TestHookObservationEventsSpool(t *testing.T) {
	for _, f := range failures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			url := f.url(t)
			spool := t.TempDir()
			var want []byte
			for _, event := range []string{"PostToolUse", "SessionEnd", "PostToolUseFailure", "Notification", "SessionStart"} {
				in := payloadFor(t, event)
				res := hookRun{
					args:  []string{"--timeout", "300ms", event},
					env:   map[string]string{"GAVEL_URL": url, "GAVEL_SPOOL_DIR": spool},
					stdin: in,
				}.run(t)
				if res.code != 0 || res.stdout != "" || !strings.HasPrefix(res.stderr, failPrefix) || !strings.Contains(res.stderr, "spooled") {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0, no stdout, a note that it was spooled", event, res.code, res.stdout, res.stderr)
				}
				want = append(want, bytes.TrimSpace(in)...)
				want = append(want, '\n')
			}
			path := filepath.Join(spool, spoolName)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("spool\n%s\nwant\n%s", got, want)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Errorf("spool mode %v, want 0600", st.Mode().Perm())
			}
		})
	}
}

func TestHookSlowServerRespectsDeadline(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	const timeout = 400 * time.Millisecond
	for _, tc := range []struct {
		event string
		code  int
	}{{"PreToolUse", 2}, {"PermissionRequest", 0}, {"PostToolUse", 0}} {
		res := hookRun{
			args:  []string{"--timeout", timeout.String(), tc.event},
			env:   map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": t.TempDir()},
			stdin: payloadFor(t, tc.event),
		}.run(t)
		if res.code != tc.code || !strings.Contains(res.stderr, "no answer") {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and no answer", tc.event, res.code, res.stderr, tc.code)
		}
		if res.elapsed > timeout+600*time.Millisecond {
			t.Errorf("%s: took %v with a %v deadline", tc.event, res.elapsed, timeout)
		}
	}
	// The environment sets the deadline too, in seconds.
	res := hookRun{
		args:  []string{"PreToolUse"},
		env:   map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_HOOK_TIMEOUT": "0.3"},
		stdin: payload(t, "pretooluse_bash"),
	}.run(t)
	if res.code != 2 || res.elapsed > 900*time.Millisecond {
		t.Errorf("GAVEL_HOOK_TIMEOUT=0.3: exit %d after %v", res.code, res.elapsed)
	}
}

func TestHookEventName(t *testing.T) {
	url := closedURL(t)
	tests := []struct {
		name  string
		arg   string
		stdin []byte
		code  int
	}{
		// The JSON names the event; a different argument does not count.
		{"JSON wins over the argument", "PostToolUse", payload(t, "pretooluse_bash"), 2},
		{"JSON wins the other way", "PreToolUse", payload(t, "posttooluse"), 0},
		{"argument when the JSON has none", "PreToolUse", []byte(`{"session_id":"abc123","tool_name":"Bash"}`), 2},
		{"argument for an observation", "PostToolUse", []byte(`{"session_id":"abc123","tool_name":"Bash"}`), 0},
		{"no event at all fails closed", "", []byte(`{"session_id":"abc123"}`), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.arg != "" {
				args = []string{tc.arg}
			}
			res := hookRun{args: args, env: map[string]string{"GAVEL_URL": url, "GAVEL_SPOOL_DIR": t.TempDir()}, stdin: tc.stdin}.run(t)
			if res.code != tc.code || res.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d", res.code, res.stdout, res.stderr, tc.code)
			}
		})
	}
}

func TestHookBadInput(t *testing.T) {
	rec := newRecorder(t, answerWith(200, `{"continue":true}`))
	big := append([]byte(`{"hook_event_name":"PreToolUse","tool_input":{"content":"`), bytes.Repeat([]byte("x"), maxInput)...)
	big = append(big, `"}}`...)
	tests := []struct {
		name, event string
		stdin       []byte
		code        int
		stdout      string
		stderr      string
	}{
		{"over the cap, gating", "PreToolUse", big, 2, "", "stdin exceeds the 4 MiB limit"},
		{"over the cap, PermissionRequest", "PermissionRequest", big, 0, `"behavior":"deny","message":"governance unavailable: stdin exceeds the 4 MiB limit"`, "4 MiB"},
		{"over the cap, observation", "PostToolUse", big, 0, "", "4 MiB"},
		{"not JSON", "UserPromptSubmit", []byte("hello\n"), 2, "", "stdin is not a JSON object"},
		{"JSON array", "PreToolUse", []byte(`["PreToolUse"]`), 2, "", "stdin is not a JSON object"},
		{"empty", "PreToolUse", nil, 2, "", "stdin is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spool := t.TempDir()
			res := hookRun{
				args:  []string{tc.event},
				env:   map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool},
				stdin: tc.stdin,
			}.run(t)
			if res.code != tc.code || !strings.Contains(res.stdout, tc.stdout) || (tc.stdout == "" && res.stdout != "") || !strings.HasPrefix(res.stderr, failPrefix) || !strings.Contains(res.stderr, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr naming %q", res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
			}
			if _, err := os.Stat(filepath.Join(spool, spoolName)); err == nil {
				t.Error("unusable stdin was spooled")
			}
		})
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("gavel received %d requests for unusable input", n)
	}
}

func TestHookMisconfigured(t *testing.T) {
	rec := newRecorder(t, answerWith(200, `{"continue":true}`))
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		stderr string
	}{
		{"no endpoint", []string{"PreToolUse"}, nil, "no gavel endpoint configured"},
		{"unknown flag", []string{"--bogus", "PreToolUse"}, map[string]string{"GAVEL_URL": rec.srv.URL}, "bad flags"},
		{"bad timeout", []string{"PreToolUse"}, map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_HOOK_TIMEOUT": "soon"}, "GAVEL_HOOK_TIMEOUT"},
		{"missing discovery file", []string{"--discovery", "/nonexistent/ports.json", "PreToolUse"}, nil, "/nonexistent/ports.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := hookRun{args: tc.args, env: tc.env, stdin: payload(t, "pretooluse_bash")}.run(t)
			if res.code != 2 || res.stdout != "" || !strings.HasPrefix(res.stderr, failPrefix) || !strings.Contains(res.stderr, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 naming %q", res.code, res.stdout, res.stderr, tc.stderr)
			}
		})
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("gavel received %d requests from a misconfigured hook", n)
	}
}

func TestHookFailOpen(t *testing.T) {
	url := closedURL(t)
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		event  string
		code   int
		stdout string
	}{
		{"flag, gating", []string{"--fail-open", "PreToolUse,PermissionRequest"}, nil, "PreToolUse", 0, ""},
		{"flag, PermissionRequest shows its dialog", []string{"--fail-open", "PreToolUse,PermissionRequest"}, nil, "PermissionRequest", 0, ""},
		{"flag, an unlisted event still fails closed", []string{"--fail-open", "PreToolUse"}, nil, "UserPromptSubmit", 2, ""},
		{"env", nil, map[string]string{"GAVEL_HOOK_FAIL_OPEN": "UserPromptSubmit, ConfigChange"}, "UserPromptSubmit", 0, ""},
		{"the flag wins over env", []string{"--fail-open", "ConfigChange"}, map[string]string{"GAVEL_HOOK_FAIL_OPEN": "PreToolUse"}, "PreToolUse", 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"GAVEL_URL": url, "GAVEL_SPOOL_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			res := hookRun{args: append(tc.args, tc.event), env: env, stdin: payloadFor(t, tc.event)}.run(t)
			if res.code != tc.code || res.stdout != tc.stdout || !strings.HasPrefix(res.stderr, failPrefix) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q", res.code, res.stdout, res.stderr, tc.code, tc.stdout)
			}
			if tc.code == 0 && !strings.Contains(res.stderr, "fails open by configuration") {
				t.Fatalf("stderr %q does not say the event failed open", res.stderr)
			}
		})
	}
}

func TestHookDiscoveryFile(t *testing.T) {
	rec := newRecorder(t, answerWith(200, `{"continue":true}`))
	addr := strings.TrimPrefix(rec.srv.URL, "http://")
	write := func(t *testing.T, path string) {
		t.Helper()
		if err := discovery.Write(path, discovery.Info{PID: 1, HTTPAddr: addr, HookToken: "disc-token"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) hookRun
		auth  string
	}{
		{"--discovery", func(t *testing.T) hookRun {
			p := filepath.Join(t.TempDir(), "d.json")
			write(t, p)
			return hookRun{args: []string{"--discovery", p}}
		}, "Bearer disc-token"},
		{"GAVEL_DISCOVERY", func(t *testing.T) hookRun {
			p := filepath.Join(t.TempDir(), "d.json")
			write(t, p)
			return hookRun{env: map[string]string{"GAVEL_DISCOVERY": p}}
		}, "Bearer disc-token"},
		{"XDG_RUNTIME_DIR", func(t *testing.T) hookRun {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "gavel", "ports.json"))
			return hookRun{env: map[string]string{"XDG_RUNTIME_DIR": dir}}
		}, "Bearer disc-token"},
		{"./gavel-data", func(t *testing.T) hookRun {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "gavel-data", "ports.json"))
			return hookRun{dir: dir}
		}, "Bearer disc-token"},
		{"GAVEL_TOKEN wins over the file", func(t *testing.T) hookRun {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "gavel", "ports.json"))
			return hookRun{env: map[string]string{"XDG_RUNTIME_DIR": dir, "GAVEL_TOKEN": "env-token"}}
		}, "Bearer env-token"},
		{"--token wins over GAVEL_TOKEN", func(t *testing.T) hookRun {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "gavel", "ports.json"))
			return hookRun{args: []string{"--token", "flag-token"}, env: map[string]string{"XDG_RUNTIME_DIR": dir, "GAVEL_TOKEN": "env-token"}}
		}, "Bearer flag-token"},
		{"the file's token for the file's gavel given by URL", func(t *testing.T) hookRun {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "gavel", "ports.json"))
			return hookRun{env: map[string]string{"XDG_RUNTIME_DIR": dir, "GAVEL_URL": rec.srv.URL + "/"}}
		}, "Bearer disc-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.setup(t)
			r.args = append(r.args, "PreToolUse")
			r.stdin = payload(t, "pretooluse_bash")
			before := len(rec.requests())
			res := r.run(t)
			if res.code != 0 || res.stdout != `{"continue":true}` {
				t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
			}
			reqs := rec.requests()
			if len(reqs) != before+1 {
				t.Fatalf("%d new requests, want 1", len(reqs)-before)
			}
			if got := reqs[len(reqs)-1].header.Get("Authorization"); got != tc.auth {
				t.Fatalf("Authorization %q, want %q", got, tc.auth)
			}
		})
	}

	t.Run("URL precedence", func(t *testing.T) {
		other := newRecorder(t, answerWith(200, `{"from":"other"}`))
		third := newRecorder(t, answerWith(200, `{"from":"third"}`))
		dir := t.TempDir()
		write(t, filepath.Join(dir, "gavel", "ports.json"))
		// --url beats GAVEL_URL beats the discovery file; the file's
		// token is not sent to another gavel.
		res := hookRun{
			args:  []string{"--url", other.srv.URL, "PreToolUse"},
			env:   map[string]string{"XDG_RUNTIME_DIR": dir, "GAVEL_URL": third.srv.URL},
			stdin: payload(t, "pretooluse_bash"),
		}.run(t)
		if res.code != 0 || res.stdout != `{"from":"other"}` {
			t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		if got := other.requests()[0].header.Get("Authorization"); got != "" {
			t.Fatalf("the discovery file's token went to another gavel: %q", got)
		}
		res = hookRun{
			args:  []string{"PreToolUse"},
			env:   map[string]string{"XDG_RUNTIME_DIR": dir, "GAVEL_URL": third.srv.URL},
			stdin: payload(t, "pretooluse_bash"),
		}.run(t)
		if res.code != 0 || res.stdout != `{"from":"third"}` {
			t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	})
}

// spoolLines writes n observation payloads to a spool dir.
func spoolLines(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	var lines [][]byte
	var buf bytes.Buffer
	for i := range n {
		l := []byte(`{"session_id":"abc123","hook_event_name":"PostToolUse","tool_name":"Bash","tool_use_id":"toolu_` + strconv.Itoa(i) + `"}`)
		lines = append(lines, l)
		buf.Write(l)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, spoolName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestHookSpoolUploadedAfterSuccess(t *testing.T) {
	spool := t.TempDir()
	down := closedURL(t)
	var spooled [][]byte
	for _, event := range []string{"PostToolUse", "Stop", "SessionEnd"} {
		in := payloadFor(t, event)
		res := hookRun{args: []string{event}, env: map[string]string{"GAVEL_URL": down, "GAVEL_SPOOL_DIR": spool}, stdin: in}.run(t)
		if res.code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", event, res.code, res.stderr)
		}
		spooled = append(spooled, bytes.TrimSpace(in))
	}

	allow := `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"ok"}}`
	rec := newRecorder(t, answerWith(200, allow))
	res := hookRun{
		args:  []string{"--token", "tok", "PreToolUse"},
		env:   map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool},
		stdin: payload(t, "pretooluse_bash"),
	}.run(t)
	if res.code != 0 || res.stdout != allow || res.stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	live, replays := rec.split()
	if len(live) != 1 || !bytes.Equal(live[0].body, payload(t, "pretooluse_bash")) {
		t.Fatalf("%d live requests, want the PreToolUse", len(live))
	}
	if len(replays) != len(spooled) {
		t.Fatalf("%d replays, want %d", len(replays), len(spooled))
	}
	for i, r := range replays {
		if !bytes.Equal(r.body, spooled[i]) {
			t.Errorf("replay %d: %s, want %s", i, r.body, spooled[i])
		}
		if r.header.Get("X-Gavel-Replay") != "1" || r.header.Get("Authorization") != "Bearer tok" || r.path != "/v1/hooks/claude-code" {
			t.Errorf("replay %d: path %s, headers %v", i, r.path, r.header)
		}
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("spool dir not empty after the upload: %v", names)
	}

	// Nothing left: the next call sends no replays.
	hookRun{args: []string{"PreToolUse"}, env: map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool}, stdin: payload(t, "pretooluse_bash")}.run(t)
	if _, replays := rec.split(); len(replays) != len(spooled) {
		t.Fatalf("%d replays after a second call, want still %d", len(replays), len(spooled))
	}
}

func TestHookSpoolKeepsWhatGavelDidNotTake(t *testing.T) {
	spool := t.TempDir()
	lines := spoolLines(t, spool, 6)
	// gavel takes live calls and every other replay; the rest fail with
	// 503, and one is malformed (400) and is dropped.
	var mu sync.Mutex
	n := 0
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Gavel-Replay") == "" {
			w.WriteHeader(204)
			return
		}
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		switch {
		case i == 5:
			w.WriteHeader(400)
		case i%2 == 1:
			w.WriteHeader(503)
		}
	})
	res := hookRun{args: []string{"PreToolUse"}, env: map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool}, stdin: payload(t, "pretooluse_bash")}.run(t)
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	got, err := os.ReadFile(filepath.Join(spool, spoolName))
	if err != nil {
		t.Fatal(err)
	}
	want := string(lines[1]) + "\n" + string(lines[3]) + "\n"
	if string(got) != want {
		t.Fatalf("spool after a partial upload:\n%s\nwant\n%s", got, want)
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 1 {
		t.Fatalf("%d files in the spool dir, want only the spool", len(entries))
	}
}

func TestHookSpoolCap(t *testing.T) {
	spool := t.TempDir()
	down := closedURL(t)
	in := payload(t, "posttooluse")
	env := map[string]string{"GAVEL_URL": down, "GAVEL_SPOOL_DIR": spool, "GAVEL_SPOOL_MAX_BYTES": strconv.Itoa(len(in) + 10)}
	first := hookRun{args: []string{"PostToolUse"}, env: env, stdin: in}.run(t)
	second := hookRun{args: []string{"PostToolUse"}, env: env, stdin: in}.run(t)
	if first.code != 0 || second.code != 0 {
		t.Fatalf("exit %d, %d; want 0", first.code, second.code)
	}
	if !strings.Contains(second.stderr, "spool") || !strings.Contains(second.stderr, "full") {
		t.Fatalf("stderr %q does not say the spool is full", second.stderr)
	}
	got, _ := os.ReadFile(filepath.Join(spool, spoolName))
	if !bytes.Equal(got, in) {
		t.Fatalf("spool holds %d bytes, want only the first payload (%d bytes)", len(got), len(in))
	}
}

func TestHookSpoolCompactsMultiLinePayloads(t *testing.T) {
	spool := t.TempDir()
	in := []byte("{\n  \"hook_event_name\": \"SessionEnd\",\n  \"reason\": \"other\"\n}\n")
	res := hookRun{args: []string{"SessionEnd"}, env: map[string]string{"GAVEL_URL": closedURL(t), "GAVEL_SPOOL_DIR": spool}, stdin: in}.run(t)
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	got, _ := os.ReadFile(filepath.Join(spool, spoolName))
	if string(got) != `{"hook_event_name":"SessionEnd","reason":"other"}`+"\n" {
		t.Fatalf("spool %q, want one compact line", got)
	}
}

func TestHookConcurrentUploadsSendEachPayloadOnce(t *testing.T) {
	spool := t.TempDir()
	lines := spoolLines(t, spool, 100)
	rec := newRecorder(t, answerWith(200, ""))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			hookRun{args: []string{"PreToolUse"}, env: map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool}, stdin: payload(t, "pretooluse_bash")}.run(t)
		})
	}
	wg.Wait()
	_, replays := rec.split()
	seen := map[string]int{}
	for _, r := range replays {
		seen[string(r.body)]++
	}
	for _, l := range lines {
		if seen[string(l)] != 1 {
			t.Errorf("%s uploaded %d times, want once", l, seen[string(l)])
		}
	}
	if len(replays) != len(lines) {
		t.Errorf("%d replays, want %d", len(replays), len(lines))
	}
}

func TestHookStaleClaimIsTakenOver(t *testing.T) {
	spool := t.TempDir()
	lines := spoolLines(t, spool, 2)
	// An uploader that died two minutes ago left its claim behind.
	old := time.Now().Add(-2 * time.Minute).UnixNano()
	stale := filepath.Join(spool, claimPrefix+strconv.FormatInt(old, 10)+"-999-0")
	if err := os.Rename(filepath.Join(spool, spoolName), stale); err != nil {
		t.Fatal(err)
	}
	// A fresh claim belongs to a live uploader and is left alone.
	fresh := filepath.Join(spool, claimPrefix+strconv.FormatInt(time.Now().UnixNano(), 10)+"-998-0")
	if err := os.WriteFile(fresh, []byte(`{"hook_event_name":"SessionEnd"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, answerWith(204, ""))
	res := hookRun{args: []string{"PreToolUse"}, env: map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool}, stdin: payload(t, "pretooluse_bash")}.run(t)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	_, replays := rec.split()
	if len(replays) != 2 || !bytes.Equal(replays[0].body, lines[0]) || !bytes.Equal(replays[1].body, lines[1]) {
		t.Fatalf("%d replays, want the 2 payloads of the stale claim", len(replays))
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale claim still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a live uploader's claim was taken: %v", err)
	}
}

func TestHookUploadStaysWithinTheDeadline(t *testing.T) {
	spool := t.TempDir()
	spoolLines(t, spool, 50)
	// Live calls are answered at once, replays slowly: the upload must
	// stop at the deadline and keep the rest.
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Gavel-Replay") != "" {
			select {
			case <-r.Context().Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	const timeout = 500 * time.Millisecond
	res := hookRun{args: []string{"--timeout", timeout.String(), "PreToolUse"}, env: map[string]string{"GAVEL_URL": rec.srv.URL, "GAVEL_SPOOL_DIR": spool}, stdin: payload(t, "pretooluse_bash")}.run(t)
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res.elapsed > timeout+600*time.Millisecond {
		t.Fatalf("took %v with a %v deadline", res.elapsed, timeout)
	}
	got, _ := os.ReadFile(filepath.Join(spool, spoolName))
	left := bytes.Count(got, []byte("\n"))
	_, replays := rec.split()
	if left == 0 || left >= 50 {
		t.Fatalf("%d payloads left in the spool after %d replays, want some uploaded and the rest kept", left, len(replays))
	}
	// Every payload was either accepted (the replay finished) or kept; a
	// replay cut off by the deadline is kept and may arrive again.
	if left+len(replays) < 50 {
		t.Fatalf("%d left + %d replayed < 50: payloads lost", left, len(replays))
	}
}

func TestHookVersion(t *testing.T) {
	res := hookRun{args: []string{"--version"}}.run(t)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "gavel-hook ") {
		t.Fatalf("exit %d, stdout %q", res.code, res.stdout)
	}
}
