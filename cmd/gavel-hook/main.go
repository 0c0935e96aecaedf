// Command gavel-hook is the Claude Code command hook that forwards hook
// events to gavel. Claude Code runs it for each configured event with the
// hook's JSON on stdin; gavel-hook POSTs that JSON unchanged to gavel's
// POST /v1/hooks/claude-code and hands gavel's answer back to Claude Code.
//
//	gavel-hook [flags] [Event]
//
// A 200 answer with a JSON object body is written to stdout unchanged (exit
// 0); a 200 or 204 with an empty body means "no opinion" (no output, exit
// 0). Nothing else is ever written to stdout, except the deny decision
// below.
//
// When gavel cannot answer (no endpoint configured, connection refused, no
// answer within the internal deadline, a non-2xx status, a body that is not
// a JSON object, stdin unreadable or larger than 4 MiB), gavel-hook decides
// itself, by event:
//
//	event                                          on failure
//	PreToolUse, UserPromptSubmit,                  "gavel-hook: governance unavailable: <reason>"
//	UserPromptExpansion, PreCompact, ConfigChange, on stderr, exit 2 (Claude Code blocks the
//	TaskCreated, Elicitation, ElicitationResult    action; an elicitation is declined)
//	PermissionRequest                              stdout {"hookSpecificOutput":{"hookEventName":
//	                                               "PermissionRequest","decision":{"behavior":"deny",
//	                                               "message":"governance unavailable: <reason>"}}},
//	                                               exit 0 (Claude Code ignores exit 2 here)
//	Stop, SubagentStop                             exit 0, a note on stderr (the agent is not
//	                                               trapped by an outage); payload spooled
//	every other event (PostToolUse,                exit 0, a note on stderr, payload appended to
//	PostToolUseFailure, PostToolBatch, SessionStart, the local spool
//	SessionEnd, Notification, ...)
//
// Claude Code treats a command hook that times out as "no decision" (it
// fails open), so gavel-hook keeps its own, shorter deadline: --timeout
// (or GAVEL_HOOK_TIMEOUT), default 2s, which should be min(2s, T_hook-1s)
// for the hook's "timeout" T_hook in settings.json.
//
// Failing open is a per-event configuration choice, never the default for a
// gating event: --fail-open PreToolUse,UserPromptSubmit (or
// GAVEL_HOOK_FAIL_OPEN) makes those events exit 0 with a note on stderr
// (PermissionRequest then shows its dialog as usual); their payloads are
// spooled so gavel learns of the ungoverned action later.
//
// The spool is $GAVEL_SPOOL_DIR/spool.jsonl (default
// ~/.claude/gavel-spool/spool.jsonl): one JSON payload per line, mode 0600,
// capped at 10 MiB (--spool-max-bytes or GAVEL_SPOOL_MAX_BYTES; payloads
// beyond it are dropped with a note on stderr). After any later successful
// call, once the answer is on stdout, gavel-hook claims the spool (renames
// it, so two concurrent hooks never upload the same entries), POSTs each
// payload with the header X-Gavel-Replay: 1 within what is left of the
// deadline, and puts back the entries that were not accepted.
//
// Endpoint and token, first found wins: --url and --token; GAVEL_URL and
// GAVEL_TOKEN; the discovery file a running gavel writes (--discovery PATH,
// else GAVEL_DISCOVERY, else $XDG_RUNTIME_DIR/gavel/ports.json, else
// ./gavel-data/ports.json), whose http_addr and hook_token are used. A token
// from the discovery file is sent only to the address that file names.
//
// In .claude/settings.json (`gavel hook install` writes this):
//
//	{"hooks": {
//	  "PreToolUse": [{"matcher": "*", "hooks": [
//	    {"type": "command", "command": "/usr/local/bin/gavel-hook", "args": ["PreToolUse"], "timeout": 5}]}],
//	  "PermissionRequest": [{"matcher": "*", "hooks": [
//	    {"type": "command", "command": "/usr/local/bin/gavel-hook", "args": ["PermissionRequest"], "timeout": 5}]}],
//	  "UserPromptSubmit": [{"hooks": [
//	    {"type": "command", "command": "/usr/local/bin/gavel-hook", "args": ["UserPromptSubmit"], "timeout": 5}]}]
//	}}
//
// Every request carries Authorization: Bearer <token>, X-Gavel-Agent:
// claude-code, X-Gavel-Transport: command-forwarder,
// X-Gavel-Forwarder-Version and, when Claude Code sets CLAUDE_PROJECT_DIR,
// X-Gavel-Project-Dir.
//
// gavel-hook imports only the standard library and gavel's discovery file
// reader: it starts on every tool call, so it must start fast.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gavel-dev/gavel/cmd/internal/discovery"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise
// it comes from the module's build info.
var version = ""

const (
	// maxInput is the most stdin gavel-hook reads.
	maxInput = 4 << 20
	// maxAnswer is the largest answer gavel-hook accepts from gavel.
	maxAnswer = 4 << 20
	// defaultTimeout is the internal deadline when none is configured.
	defaultTimeout = 2 * time.Second
	// defaultSpoolMax caps the spool file.
	defaultSpoolMax = 10 << 20
	// hooksPath is gavel's hooks endpoint.
	hooksPath = "/v1/hooks/claude-code"
	// spoolName is the spool file's name in the spool directory.
	spoolName = "spool.jsonl"
	// staleClaim is how old a claimed spool file must be before another
	// hook takes it over (its uploader died or ran out of time).
	staleClaim = time.Minute
)

// gating events block their action when gavel cannot be asked.
var gating = map[string]bool{
	"PreToolUse":          true,
	"UserPromptSubmit":    true,
	"UserPromptExpansion": true,
	"PreCompact":          true,
	"ConfigChange":        true,
	"TaskCreated":         true,
	"Elicitation":         true,
	"ElicitationResult":   true,
}

func main() {
	start := time.Now()
	os.Exit(run(start, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// config is what the flags and the environment say.
type config struct {
	url, token     string
	discoveryPath  string
	timeout        time.Duration
	failOpen       map[string]bool
	spoolDir       string
	spoolMax       int64
	projectDir     string
	eventArg       string
	configProblems []string // reported as the failure reason if gavel cannot be asked at all
}

// hook is one run of gavel-hook.
type hook struct {
	cfg      config
	deadline time.Time
	stdout   io.Writer
	stderr   io.Writer
	client   *http.Client
	url      string // full hooks endpoint URL
	token    string
}

// run is gavel-hook's main; it returns the exit code.
func run(start time.Time, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg, showVersion := parseConfig(args, getenv)
	if showVersion {
		fmt.Fprintln(stdout, "gavel-hook", buildVersion())
		return 0
	}
	h := &hook{cfg: cfg, deadline: start.Add(cfg.timeout), stdout: stdout, stderr: stderr}

	body, readErr := readInput(stdin)
	event, parseErr := eventName(body)
	if event == "" {
		event = cfg.eventArg
	}
	switch {
	case readErr != nil:
		return h.fail(event, nil, readErr.Error())
	case parseErr != nil:
		return h.fail(event, nil, parseErr.Error())
	case len(cfg.configProblems) > 0:
		return h.fail(event, body, strings.Join(cfg.configProblems, "; "))
	}
	if err := h.resolveEndpoint(getenv); err != nil {
		return h.fail(event, body, err.Error())
	}
	h.client = newClient()

	answer, err := h.forward(body)
	if err != nil {
		return h.fail(event, body, err.Error())
	}
	if len(answer) > 0 {
		if _, err := h.stdout.Write(answer); err != nil {
			return h.fail(event, body, "write the answer to stdout: "+err.Error())
		}
	}
	h.uploadSpool()
	return 0
}

// parseConfig reads the flags, then the environment for what they left
// unset. Problems are collected, not fatal: the event decides what a
// misconfiguration means.
func parseConfig(args []string, getenv func(string) string) (config, bool) {
	cfg := config{timeout: defaultTimeout, spoolMax: defaultSpoolMax}
	fs := flag.NewFlagSet("gavel-hook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var timeoutSet, failOpenSet, spoolMaxSet bool
	var showVersion bool
	fs.StringVar(&cfg.url, "url", "", "gavel's HTTP API URL (env GAVEL_URL)")
	fs.StringVar(&cfg.token, "token", "", "bearer token for the hooks endpoint (env GAVEL_TOKEN)")
	fs.StringVar(&cfg.discoveryPath, "discovery", "", "gavel's discovery file (env GAVEL_DISCOVERY)")
	fs.StringVar(&cfg.spoolDir, "spool-dir", "", "where undeliverable observation events are kept (env GAVEL_SPOOL_DIR)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.Func("timeout", "internal deadline, e.g. 2s or 1.5 (env GAVEL_HOOK_TIMEOUT)", func(s string) error {
		d, err := parseTimeout(s)
		cfg.timeout, timeoutSet = d, true
		return err
	})
	fs.Func("fail-open", "comma-separated events that proceed when gavel is unavailable (env GAVEL_HOOK_FAIL_OPEN)", func(s string) error {
		cfg.failOpen, failOpenSet = parseEvents(s), true
		return nil
	})
	fs.Func("spool-max-bytes", "spool size cap (env GAVEL_SPOOL_MAX_BYTES)", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("want a byte count")
		}
		cfg.spoolMax, spoolMaxSet = n, true
		return nil
	})
	if err := fs.Parse(args); err != nil {
		cfg.configProblems = append(cfg.configProblems, "bad flags: "+err.Error())
		if !timeoutSet || cfg.timeout <= 0 {
			cfg.timeout = defaultTimeout
		}
	}
	if showVersion {
		return cfg, true
	}
	if fs.NArg() > 0 {
		cfg.eventArg = fs.Arg(0)
	}
	if cfg.url == "" {
		cfg.url = getenv("GAVEL_URL")
	}
	if cfg.token == "" {
		cfg.token = getenv("GAVEL_TOKEN")
	}
	if cfg.discoveryPath == "" {
		cfg.discoveryPath = getenv("GAVEL_DISCOVERY")
	}
	if cfg.spoolDir == "" {
		cfg.spoolDir = getenv("GAVEL_SPOOL_DIR")
	}
	if cfg.spoolDir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfg.spoolDir = filepath.Join(home, ".claude", "gavel-spool")
		}
	}
	if v := getenv("GAVEL_HOOK_TIMEOUT"); v != "" && !timeoutSet {
		d, err := parseTimeout(v)
		if err != nil {
			cfg.configProblems = append(cfg.configProblems, "GAVEL_HOOK_TIMEOUT="+strconv.Quote(v)+": "+err.Error())
		} else {
			cfg.timeout = d
		}
	}
	if !failOpenSet {
		cfg.failOpen = parseEvents(getenv("GAVEL_HOOK_FAIL_OPEN"))
	}
	if v := getenv("GAVEL_SPOOL_MAX_BYTES"); v != "" && !spoolMaxSet {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			cfg.configProblems = append(cfg.configProblems, "GAVEL_SPOOL_MAX_BYTES="+strconv.Quote(v)+": want a byte count")
		} else {
			cfg.spoolMax = n
		}
	}
	cfg.projectDir = getenv("CLAUDE_PROJECT_DIR")
	return cfg, false
}

// parseTimeout accepts a Go duration ("1500ms") or seconds ("2", "1.5").
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return defaultTimeout, fmt.Errorf("want a duration such as 2s")
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return defaultTimeout, fmt.Errorf("want a positive duration")
	}
	return d, nil
}

func parseEvents(s string) map[string]bool {
	m := map[string]bool{}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			m[e] = true
		}
	}
	return m
}

// readInput reads stdin up to the cap.
func readInput(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read stdin: %v", err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("stdin exceeds the %d MiB limit", maxInput>>20)
	}
	return b, nil
}

// eventName checks that body is a JSON object and returns its
// hook_event_name ("" when absent).
func eventName(body []byte) (string, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", errors.New("stdin is empty, want the hook's JSON")
	}
	var in struct {
		HookEventName string `json:"hook_event_name"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return "", fmt.Errorf("stdin is not a JSON object: %v", err)
	}
	return in.HookEventName, nil
}

// resolveEndpoint finds gavel's URL and token.
func (h *hook) resolveEndpoint(getenv func(string) string) error {
	base, token := h.cfg.url, h.cfg.token
	if base == "" || token == "" {
		path := h.cfg.discoveryPath
		explicit := path != ""
		if !explicit {
			if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
				path = filepath.Join(dir, "gavel", discovery.FileName)
			} else {
				path = filepath.Join("gavel-data", discovery.FileName)
			}
		}
		info, err := discovery.Read(path)
		switch {
		case err == nil && info.HTTPAddr == "":
			if base == "" {
				return fmt.Errorf("the gavel in %s serves no HTTP API", path)
			}
		case err == nil:
			addr := "http://" + info.HTTPAddr
			if base == "" {
				base = addr
			}
			// The discovery file's token goes only to the gavel that wrote it.
			if token == "" && sameEndpoint(base, addr) {
				token = info.HookToken
			}
		case base == "":
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no gavel endpoint configured (no --url, GAVEL_URL or discovery file at %s)", path)
			}
			return err
		}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	h.url = strings.TrimRight(base, "/") + hooksPath
	h.token = token
	return nil
}

func sameEndpoint(a, b string) bool {
	norm := func(s string) string {
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		return strings.TrimRight(s, "/")
	}
	return norm(a) == norm(b)
}

func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{}).DialContext,
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		},
		// A redirect is an error: the bearer token goes to gavel only.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// post sends one payload to the hooks endpoint and returns the status and
// body (at most maxAnswer+1 bytes).
func (h *hook) post(ctx context.Context, body []byte, replay bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("bad gavel URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	req.Header.Set("X-Gavel-Agent", "claude-code")
	req.Header.Set("X-Gavel-Transport", "command-forwarder")
	req.Header.Set("X-Gavel-Forwarder-Version", buildVersion())
	if replay {
		req.Header.Set("X-Gavel-Replay", "1")
	} else if d := h.cfg.projectDir; d != "" && !strings.ContainsAny(d, "\r\n\x00") {
		req.Header.Set("X-Gavel-Project-Dir", d)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read gavel's answer: %v", err)
	}
	return resp.StatusCode, b, nil
}

// forward asks gavel and returns its answer: nil for "no opinion", else a
// JSON object to write to stdout unchanged.
func (h *hook) forward(body []byte) ([]byte, error) {
	ctx, cancel := context.WithDeadline(context.Background(), h.deadline)
	defer cancel()
	status, answer, err := h.post(ctx, body, false)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer from %s within %v", h.url, h.cfg.timeout)
		}
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			// *url.Error: "Post URL: dial tcp ...: connection refused"
			return nil, fmt.Errorf("POST %s: %v", h.url, uerr.Unwrap())
		}
		return nil, err
	}
	if status < 200 || status > 299 {
		return nil, fmt.Errorf("gavel answered HTTP %d %s", status, http.StatusText(status))
	}
	if len(answer) > maxAnswer {
		return nil, fmt.Errorf("gavel's answer exceeds the %d MiB limit", maxAnswer>>20)
	}
	trimmed := bytes.TrimSpace(answer)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, fmt.Errorf("gavel's answer (HTTP %d) is not a JSON object", status)
	}
	return answer, nil
}

// fail decides for the event when gavel could not be asked. body is the
// payload to spool (nil when stdin was unusable).
func (h *hook) fail(event string, body []byte, reason string) int {
	msg := "gavel-hook: governance unavailable: " + reason
	name := event
	if name == "" {
		name = "an unnamed event"
	}
	switch {
	case h.cfg.failOpen[event] && (gating[event] || event == "PermissionRequest"):
		fmt.Fprintf(h.stderr, "%s (%s fails open by configuration)\n", msg, event)
		h.spool(body)
		return 0
	case event == "PermissionRequest":
		fmt.Fprintln(h.stderr, msg)
		type decision struct {
			Behavior string `json:"behavior"`
			Message  string `json:"message"`
		}
		type output struct {
			HookEventName string   `json:"hookEventName"`
			Decision      decision `json:"decision"`
		}
		deny := struct {
			HookSpecificOutput output `json:"hookSpecificOutput"`
		}{output{"PermissionRequest", decision{"deny", "governance unavailable: " + reason}}}
		enc := json.NewEncoder(h.stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(deny); err != nil {
			fmt.Fprintln(h.stderr, "gavel-hook: write the deny decision:", err)
			return 2
		}
		return 0
	case gating[event] || event == "":
		fmt.Fprintln(h.stderr, msg)
		return 2
	case event == "Stop" || event == "SubagentStop":
		fmt.Fprintf(h.stderr, "%s (%s proceeds)\n", msg, event)
		h.spool(body)
		return 0
	default:
		fmt.Fprintf(h.stderr, "%s (%s is an observation, it proceeds)\n", msg, name)
		h.spool(body)
		return 0
	}
}
