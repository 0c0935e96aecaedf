package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/api/mcpserver"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

// mcpTestBundle denies Bash commands that mention "forbidden", allows the
// rest, and publishes one rule.
var mcpTestBundle = map[string]string{
	"agent.rego": `package gavel.agent

# METADATA
# entrypoint: true
decision := {"decision": "deny", "reason": sprintf("no forbidden things for %s", [input.principal.sub]), "rule_ids": ["t.forbidden"]} if {
	contains(input.hook.tool_input.command, "forbidden")
} else := {"decision": "allow", "rule_ids": ["t.default"]}

# METADATA
# entrypoint: true
rules := [{"id": "t.forbidden", "summary": "Forbidden commands are denied", "effect": "deny", "events": ["PreToolUse"]}]
`,
}

func writeMCPBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range mcpTestBundle {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mcpCall[T any](t *testing.T, cs *mcp.ClientSession, tool string, args any) T {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		var msg strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				msg.WriteString(tc.Text)
			}
		}
		t.Fatalf("%s: tool error: %s", tool, msg.String())
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %s: %v", tool, b, err)
	}
	return out
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	lt, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range lt.Tools {
		if tool.OutputSchema == nil {
			t.Errorf("%s has no output schema", tool.Name)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

var mcpTools = []string{"check_action", "explain_decision", "get_policy", "validate_code"}

// connectStdio starts `gavel mcp` with args and connects an SDK client.
func connectStdio(t *testing.T, args ...string) (*mcp.ClientSession, *syncBuffer) {
	t.Helper()
	stderr := newSyncBuffer()
	cmd := exec.Command(gavelBin, append([]string{"mcp", "--log-format", "text"}, args...)...)
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "gavel-test", Version: "v0"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to gavel mcp: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		cs.Close()
		if t.Failed() {
			t.Logf("gavel mcp stderr:\n%s", stderr.String())
		}
	})
	return cs, stderr
}

func TestMCPStdio(t *testing.T) {
	cs, stderr := connectStdio(t, "--bundle", writeMCPBundle(t), "--principal", "dev")
	if got := toolNames(t, cs); !slices.Equal(got, mcpTools) {
		t.Fatalf("tools %v, want %v", got, mcpTools)
	}
	out := mcpCall[mcpserver.CheckOutput](t, cs, "check_action", map[string]any{
		"tool_name": "Bash", "tool_input": map[string]any{"command": "echo forbidden"}, "cwd": "/tmp",
	})
	if out.Decision != "deny" || out.Reason != "no forbidden things for dev" || !slices.Equal(out.RuleIDs, []string{"t.forbidden"}) {
		t.Errorf("check_action = %+v", out)
	}
	ex := mcpCall[mcpserver.Explanation](t, cs, "explain_decision", map[string]any{"decision_id": out.DecisionID})
	if ex.Outcome != "deny" || ex.Source != "mcp" || ex.Resource != "echo forbidden" {
		t.Errorf("explain_decision = %+v", ex)
	}
	pol := mcpCall[mcpserver.PolicyOutput](t, cs, "get_policy", map[string]any{"topic": "forbidden"})
	if len(pol.Rules) != 1 || pol.Version != out.PolicyVersion {
		t.Errorf("get_policy = %+v", pol)
	}
	if !strings.Contains(stderr.String(), "gavel mcp serving on stdio") {
		t.Errorf("no startup line on stderr:\n%s", stderr.String())
	}
}

// The built-in bundle answers a destructive command with a deny.
func TestMCPStdioBuiltinBundle(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Compile(t.Context(), b, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ServedEntryPoint(hooks.DefaultEntryPoint); err != nil {
		t.Skipf("the built-in bundle has no agent decision: %v", err)
	}
	cs, _ := connectStdio(t)
	if got := toolNames(t, cs); !slices.Equal(got, mcpTools) {
		t.Fatalf("tools %v, want %v", got, mcpTools)
	}
	out := mcpCall[mcpserver.CheckOutput](t, cs, "check_action", map[string]any{
		"tool_name": "Bash", "tool_input": map[string]any{"command": "rm -rf /"},
	})
	if out.Decision != "deny" || len(out.RuleIDs) == 0 || out.PolicyID != "gavel/agent/decision" {
		t.Errorf("check_action rm -rf / = %+v", out)
	}
}

// gavel serve mounts the MCP server at /mcp behind the hook token.
func TestMCPServeHTTP(t *testing.T) {
	g := startGavel(t, "--bundle", writeMCPBundle(t))
	endpoint := "http://" + g.info.HTTPAddr + "/mcp"
	client := mcp.NewClient(&mcp.Implementation{Name: "gavel-test", Version: "v0"}, nil)
	if _, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint}, nil); err == nil {
		t.Error("connected without the hook token")
	}
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}

	hc := &http.Client{Transport: headerTransport{"Authorization": "Bearer " + g.info.HookToken}}
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got := toolNames(t, cs); !slices.Equal(got, mcpTools) {
		t.Fatalf("tools %v, want %v", got, mcpTools)
	}
	out := mcpCall[mcpserver.CheckOutput](t, cs, "check_action", map[string]any{
		"tool_name": "Bash", "tool_input": map[string]any{"command": "forbidden"},
	})
	if out.Decision != "deny" || out.Reason != "no forbidden things for "+agentPrincipal.Name {
		t.Errorf("check_action = %+v", out)
	}
	ex := mcpCall[mcpserver.Explanation](t, cs, "explain_decision", map[string]any{"decision_id": out.DecisionID})
	if ex.Outcome != "deny" || ex.Source != "mcp" {
		t.Errorf("explain_decision = %+v", ex)
	}
}

type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}
