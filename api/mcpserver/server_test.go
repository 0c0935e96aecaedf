package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/mcpserver"
	"github.com/gavel-dev/gavel/policy"
)

// testBundle is a small agent policy: it denies recursive deletes, asks
// before a push, allows reads (naming the principal), errors with an
// invalid decision for a tool named Weird, and publishes three rules and
// one validation rule (AWS access keys).
var testBundle = fstest.MapFS{
	"agent.rego": {Data: []byte(`package gavel.agent

# METADATA
# entrypoint: true
decision := {"decision": "deny", "reason": "recursive delete", "agent_reason": "Do not delete recursively; remove the files you mean by name.", "rule_ids": ["shell.rm-rf"]} if {
	input.hook.tool_name == "Bash"
	contains(input.hook.tool_input.command, "rm -rf")
} else := {"decision": "ask", "reason": "a push needs a human", "rule_ids": ["shell.git-push"]} if {
	input.hook.tool_name == "Bash"
	startswith(input.hook.tool_input.command, "git push")
} else := {"decision": "allow", "reason": sprintf("reads are fine for %s via %s", [input.principal.sub, input.session.transport]), "rule_ids": ["tools.read"]} if {
	input.hook.tool_name == "Read"
} else := {"decision": "maybe"} if {
	input.hook.tool_name == "Weird"
} else := {"decision": "no_opinion"}

# METADATA
# entrypoint: true
rules := [
	{"id": "shell.rm-rf", "summary": "Recursive deletes are denied", "effect": "deny", "events": ["PreToolUse"]},
	{"id": "shell.git-push", "summary": "Pushes ask a human", "effect": "ask", "events": ["PreToolUse"]},
	{"id": "tools.read", "summary": "Reading files is allowed", "effect": "allow", "events": ["PreToolUse"]},
]
`)},
	"validate.rego": {Data: []byte(`package gavel.validate

# METADATA
# entrypoint: true
findings contains {"rule": "secret.aws-access-key", "severity": "error", "path": f.path, "line": l.line, "message": "an AWS access key id"} if {
	some f in input.files
	some l in f.lines
	regex.match("AKIA[0-9A-Z]{16}", l.text)
}
`)},
}

const testToken = "t0ken"

type fixture struct {
	srv    *httptest.Server
	recent *policy.Recent
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	svc := policy.NewService(policy.Options{})
	b, err := policy.LoadFS("test", testBundle, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	recent := policy.NewRecent(100)
	tokens := auth.NewTokens(map[string]auth.Principal{testToken: {Name: "tester", Roles: []string{auth.RoleAgent}}})
	h := tokens.Require(auth.RoleAgent, mcpserver.Handler(mcpserver.Options{
		Decider: svc, Recent: recent, RecentSize: 100, Audit: recent, Version: "test",
	}))
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, recent: recent}
}

// bearer adds the token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (f *fixture) connect(t *testing.T, version string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "gavel-test", Version: "v0"}, nil)
	tr := &mcp.StreamableClientTransport{
		Endpoint:   f.srv.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{testToken, http.DefaultTransport}},
	}
	var opts *mcp.ClientSessionOptions
	if version != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	cs, err := client.Connect(t.Context(), tr, opts)
	if err != nil {
		t.Fatalf("connect (%s): %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func call[T any](t *testing.T, cs *mcp.ClientSession, tool string, args any) (T, *mcp.CallToolResult) {
	t.Helper()
	var out T
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		return out, res
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: structured content %s: %v", tool, b, err)
	}
	if len(res.Content) == 0 {
		t.Errorf("%s: no text content mirrors the structured content", tool)
	}
	return out, res
}

func errorText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestMCPToolsOverHTTP(t *testing.T) {
	f := newFixture(t)
	for _, version := range []string{"", "2026-07-28", "2025-11-25", "2025-06-18"} {
		t.Run("revision="+version, func(t *testing.T) {
			cs := f.connect(t, version)
			if version != "" && version < "2026-07-28" {
				if got := cs.InitializeResult().ProtocolVersion; got != version {
					t.Errorf("negotiated %s, want %s", got, version)
				}
			}
			testTools(t, cs, f)
		})
	}
}

func testTools(t *testing.T, cs *mcp.ClientSession, f *fixture) {
	lt, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range lt.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Errorf("%s: input schema %v, output schema %v; want both", tool.Name, tool.InputSchema != nil, tool.OutputSchema != nil)
		}
		if tool.Annotations == nil || !tool.Annotations.ReadOnlyHint {
			t.Errorf("%s: not marked read-only", tool.Name)
		}
		if len(tool.Description) < 80 {
			t.Errorf("%s: description %q says too little", tool.Name, tool.Description)
		}
	}
	slices.Sort(names)
	if want := []string{"check_action", "explain_decision", "get_policy", "validate_code"}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}

	checks := []struct {
		tool, command, file, want, rule, reason string
	}{
		{tool: "Bash", command: "rm -rf /", want: "deny", rule: "shell.rm-rf", reason: "Do not delete recursively"},
		{tool: "Bash", command: "git push origin main", want: "ask", rule: "shell.git-push", reason: "a push needs a human"},
		{tool: "Read", file: "/proj/a.go", want: "allow", rule: "tools.read", reason: "reads are fine for tester via mcp"},
		{tool: "Bash", command: "ls", want: "no_opinion"},
	}
	var denyID string
	for _, c := range checks {
		in := map[string]any{}
		if c.command != "" {
			in["command"] = c.command
		}
		if c.file != "" {
			in["file_path"] = c.file
		}
		out, res := call[mcpserver.CheckOutput](t, cs, "check_action", map[string]any{
			"tool_name": c.tool, "tool_input": in, "cwd": "/proj", "intent": "testing",
		})
		if res.IsError {
			t.Fatalf("check_action %s %v: tool error %s", c.tool, in, errorText(res))
		}
		if out.Decision != c.want || !strings.Contains(out.Reason, c.reason) || out.DecisionID == "" ||
			out.PolicyID != "gavel/agent/decision" || out.PolicyVersion == "" {
			t.Errorf("check_action %s %v = %+v, want %s with reason %q", c.tool, in, out, c.want, c.reason)
		}
		if c.rule != "" && !slices.Contains(out.RuleIDs, c.rule) {
			t.Errorf("check_action %s %v: rules %v, want %s", c.tool, in, out.RuleIDs, c.rule)
		}
		if c.want == "deny" {
			denyID = out.DecisionID
		}
	}

	// The policy answers an invalid decision for Weird: a tool error that
	// names the reason code, audited as an error.
	_, res := call[mcpserver.CheckOutput](t, cs, "check_action", map[string]any{"tool_name": "Weird", "tool_input": map[string]any{}})
	if !res.IsError || !strings.Contains(errorText(res), "invalid_decision") {
		t.Errorf("check_action Weird: IsError %v, %q; want a tool error naming invalid_decision", res.IsError, errorText(res))
	}

	ex, res := call[mcpserver.Explanation](t, cs, "explain_decision", map[string]any{"decision_id": denyID})
	if res.IsError {
		t.Fatalf("explain_decision: %s", errorText(res))
	}
	if ex.DecisionID != denyID || ex.Source != policy.SourceMCP || ex.Outcome != "deny" || !slices.Contains(ex.RuleIDs, "shell.rm-rf") ||
		ex.InputDigest == "" || ex.PolicyVersion == "" || ex.Time == "" || ex.CorrelationID == "" || ex.Resource != "rm -rf /" || len(ex.Reasons) == 0 {
		t.Errorf("explain_decision = %+v", ex)
	}
	_, res = call[mcpserver.Explanation](t, cs, "explain_decision", map[string]any{"decision_id": "nope"})
	if !res.IsError || !strings.Contains(errorText(res), "no decision nope is held (gavel keeps the latest 100 in memory") {
		t.Errorf("explain_decision nope: %q", errorText(res))
	}

	pol, res := call[mcpserver.PolicyOutput](t, cs, "get_policy", map[string]any{})
	if res.IsError || len(pol.Rules) != 3 || pol.Version == "" || pol.Rules[0].ID != "shell.git-push" || pol.Rules[0].Events[0] != "PreToolUse" {
		t.Errorf("get_policy = %+v (%s)", pol, errorText(res))
	}
	pol, _ = call[mcpserver.PolicyOutput](t, cs, "get_policy", map[string]any{"topic": "PUSH"})
	if len(pol.Rules) != 1 || pol.Rules[0].ID != "shell.git-push" {
		t.Errorf("get_policy topic PUSH = %+v", pol.Rules)
	}
	pol, _ = call[mcpserver.PolicyOutput](t, cs, "get_policy", map[string]any{"topic": "reading"})
	if len(pol.Rules) != 1 || pol.Rules[0].ID != "tools.read" {
		t.Errorf("get_policy topic reading (a summary match) = %+v", pol.Rules)
	}

	type result struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Rule, Severity, Path string
			Line                 int
		} `json:"findings"`
		DecisionID string `json:"decision_id"`
		Revision   string `json:"policy_revision"`
	}
	v, res := call[result](t, cs, "validate_code", map[string]any{"files": []any{
		map[string]any{"path": "config.py", "content": "x = 1\nkey = 'AKIAABCDEFGHIJKLMNOP'\n"},
	}})
	if res.IsError || v.OK || len(v.Findings) != 1 || v.Findings[0].Rule != "secret.aws-access-key" || v.Findings[0].Line != 2 ||
		v.DecisionID == "" || v.Revision == "" {
		t.Errorf("validate_code = %+v (%s)", v, errorText(res))
	}
	if _, ok := f.recent.Get(v.DecisionID); !ok {
		t.Errorf("validate_code decision %s was not audited", v.DecisionID)
	}
	v, res = call[result](t, cs, "validate_code", map[string]any{"files": []any{map[string]any{"path": "ok.py", "content": "x = 1\n"}}})
	if res.IsError || !v.OK || v.Findings == nil || len(v.Findings) != 0 {
		t.Errorf("validate_code clean = %+v (%s)", v, errorText(res))
	}
	_, res = call[result](t, cs, "validate_code", map[string]any{})
	if !res.IsError || !strings.Contains(errorText(res), "nothing to validate") {
		t.Errorf("validate_code {}: %q, want a tool error saying nothing to validate", errorText(res))
	}
}

// Bad arguments get a tool error from the schema validation or a JSON-RPC
// error, and the server keeps serving.
func TestMCPBadArguments(t *testing.T) {
	f := newFixture(t)
	cs := f.connect(t, "")
	for _, tc := range []struct {
		tool string
		args any
	}{
		{"check_action", map[string]any{}},
		{"check_action", map[string]any{"tool_name": "Bash"}},
		{"check_action", map[string]any{"tool_name": 7, "tool_input": map[string]any{}}},
		{"check_action", map[string]any{"tool_name": "Bash", "tool_input": "rm -rf /"}},
		{"check_action", map[string]any{"tool_name": "", "tool_input": map[string]any{}}},
		{"explain_decision", map[string]any{"decision_id": []any{1}}},
		{"explain_decision", map[string]any{"decision_id": ""}},
		{"get_policy", map[string]any{"topic": false}},
		{"validate_code", map[string]any{"files": "main.go"}},
		{"validate_code", map[string]any{"files": []any{map[string]any{"content": "x"}}}},
		{"validate_code", map[string]any{"files": []any{map[string]any{"path": "", "content": "x"}}}},
		{"validate_code", map[string]any{"diff": "not a diff"}},
		{"no_such_tool", map[string]any{}},
	} {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
		if err == nil && !res.IsError {
			t.Errorf("%s %v: no error", tc.tool, tc.args)
		}
		if err == nil {
			t.Logf("%s %v: tool error %s", tc.tool, tc.args, errorText(res))
		} else {
			t.Logf("%s %v: %v", tc.tool, tc.args, err)
		}
	}
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatalf("server stopped serving after bad arguments: %v", err)
	}
}

func post(t *testing.T, url, token, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A 2026-07-28 client sends each request on its own, with the revision in
// _meta and the Mcp-Method and Mcp-Name headers; no initialize, no session.
func TestMCPStatelessRequest(t *testing.T) {
	f := newFixture(t)
	meta := `"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}}`
	hdr := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
	code, body := post(t, f.srv.URL+"/mcp", testToken, `{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {`+meta+`}}`, hdr)
	if code != http.StatusOK || !strings.Contains(body, `"check_action"`) || !strings.Contains(body, `"outputSchema"`) {
		t.Fatalf("tools/list: %d %s", code, body)
	}

	call := `{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "check_action", "arguments": {"tool_name": "Bash", "tool_input": {"command": "rm -rf /tmp/x"}}, ` + meta + `}}`
	hdr = map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "check_action"}
	code, body = post(t, f.srv.URL+"/mcp", testToken, call, hdr)
	var rpc struct {
		Result struct {
			StructuredContent mcpserver.CheckOutput `json:"structuredContent"`
			IsError           bool                  `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &rpc); code != http.StatusOK || err != nil || rpc.Result.StructuredContent.Decision != "deny" {
		t.Fatalf("tools/call: %d %s (%v)", code, body, err)
	}

	// A header that disagrees with the body is refused.
	hdr["Mcp-Name"] = "get_policy"
	if code, body = post(t, f.srv.URL+"/mcp", testToken, call, hdr); code == http.StatusOK || !strings.Contains(body, "-32020") {
		t.Errorf("mismatched Mcp-Name: %d %s, want -32020", code, body)
	}
}

func TestMCPRequiresToken(t *testing.T) {
	f := newFixture(t)
	body := `{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}}`
	for _, tok := range []string{"", "wrong"} {
		if code, _ := post(t, f.srv.URL+"/mcp", tok, body, nil); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "anon", Version: "v0"}, nil)
	if _, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: f.srv.URL + "/mcp"}, nil); err == nil {
		t.Error("a client without the token connected")
	}
	if code, _ := post(t, f.srv.URL+"/mcp", testToken, body, nil); code != http.StatusOK {
		t.Errorf("with the token: %d, want 200", code)
	}
}

// A request from a browser on another origin is refused.
func TestMCPCrossOrigin(t *testing.T) {
	f := newFixture(t)
	body := `{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}}`
	code, _ := post(t, f.srv.URL+"/mcp", testToken, body, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	if code != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", code)
	}
}

// Without an authenticator the configured principal asks (stdio).
func TestMCPInMemoryPrincipal(t *testing.T) {
	svc := policy.NewService(policy.Options{})
	b, err := policy.LoadFS("test", testBundle, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	s := mcpserver.New(mcpserver.Options{Decider: svc, Principal: auth.Principal{Name: "stdio-user"}})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "0"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	out, res := call[mcpserver.CheckOutput](t, cs, "check_action", map[string]any{"tool_name": "Read", "tool_input": map[string]any{"file_path": "a"}})
	if res.IsError || out.Reason != "reads are fine for stdio-user via mcp" {
		t.Errorf("check_action = %+v (%s)", out, errorText(res))
	}
	// No Recent: nothing can be explained, and the message says why.
	_, res = call[mcpserver.Explanation](t, cs, "explain_decision", map[string]any{"decision_id": out.DecisionID})
	if !res.IsError || !strings.Contains(errorText(res), "the latest decisions") {
		t.Errorf("explain_decision without Recent: %s", errorText(res))
	}
}

// Every request is logged at debug with its method, tool and duration;
// the SDK's own session chatter stays below info.
func TestMCPDebugLog(t *testing.T) {
	var buf syncBuffer
	svc := policy.NewService(policy.Options{})
	b, err := policy.LoadFS("test", testBundle, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		buf.Reset()
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		srv := httptest.NewServer(mcpserver.Handler(mcpserver.Options{Decider: svc, Logger: log}))
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "0"}, nil).Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: srv.URL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		call[mcpserver.PolicyOutput](t, cs, "get_policy", map[string]any{})
		cs.Close()
		srv.Close()
		logs := buf.String()
		switch level {
		case slog.LevelDebug:
			if !strings.Contains(logs, `msg="mcp request" method=tools/call duration=`) || !strings.Contains(logs, "tool=get_policy") {
				t.Errorf("debug log lacks the tools/call line:\n%s", logs)
			}
		case slog.LevelInfo:
			if strings.Contains(logs, "mcp request") || strings.Contains(logs, "session connected") {
				t.Errorf("info log holds debug lines:\n%s", logs)
			}
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// A loopback request naming another host (DNS rebinding) is refused unless
// the protection is turned off, as behind a same-host Envoy.
func TestMCPLocalhostProtection(t *testing.T) {
	svc := policy.NewService(policy.Options{})
	body := `{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}}`
	for _, disable := range []bool{false, true} {
		srv := httptest.NewServer(mcpserver.Handler(mcpserver.Options{Decider: svc, DisableLocalhostProtection: disable}))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(body))
		req.Host = "gavel.example.com"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		want := http.StatusForbidden
		if disable {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("DisableLocalhostProtection %v: %d, want %d", disable, resp.StatusCode, want)
		}
	}
}
