package builtin_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

func TestDefaultBundleTestsPass(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	results, err := policy.RunTests(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 10 {
		t.Fatalf("ran %d Rego tests, want the default bundle's suite", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Error(r)
		}
	}
}

func TestDefaultEntryPointIsCacheable(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Compile(t.Context(), b, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := e.EntryPoint(t.Context(), "envoy/authz/allow")
	if err != nil {
		t.Fatal(err)
	}
	if !ep.Declared || !ep.Cacheable() {
		t.Fatalf("envoy/authz/allow: declared=%v not cacheable because %v", ep.Declared, ep.NotCacheable)
	}
	if !ep.Config.ReadsBody {
		t.Error("envoy/authz/allow should declare reads_body")
	}
}

func compileDefault(t testing.TB) *policy.Engine {
	t.Helper()
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Compile(context.Background(), b, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAgentEntryPointsAreDeclaredAndCacheable(t *testing.T) {
	e := compileDefault(t)
	for _, path := range []string{"gavel/agent/decision", "gavel/agent/rules", "gavel/validate/findings"} {
		ep, err := e.ServedEntryPoint(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !ep.Declared || !ep.Cacheable() {
			t.Errorf("%s: declared=%v not cacheable because %v", path, ep.Declared, ep.NotCacheable)
		}
	}
	ep, err := e.ServedEntryPoint("gavel/agent/decision")
	if err != nil {
		t.Fatal(err)
	}
	var key []string
	for _, r := range ep.Config.CacheKey {
		key = append(key, r.String())
	}
	for _, bad := range []string{"input", "input.hook", "input.hook.session_id", "input.hook.tool_use_id"} {
		if slices.Contains(key, bad) {
			t.Errorf("gavel/agent/decision cache_key %v holds %s: decisions would not be shared between calls", key, bad)
		}
	}
}

func agentInput(event string, hook map[string]any) map[string]any {
	hook["hook_event_name"] = event
	hook["session_id"] = "s1"
	hook["cwd"] = "/work/proj"
	return map[string]any{
		"agent":     "claude-code",
		"event":     event,
		"hook":      hook,
		"principal": map[string]any{"sub": "dev", "roles": []any{}},
		"session":   map[string]any{"id": "s1", "project_dir": "/work/proj"},
	}
}

func TestAgentDecisionsParse(t *testing.T) {
	e := compileDefault(t)
	token := "ghp_" + strings.Repeat("aB3dE5gH7j", 4)[:36]
	tests := []struct {
		name    string
		in      map[string]any
		outcome policy.Outcome
		rules   []string
	}{
		{"rm root", agentInput("PreToolUse", map[string]any{"tool_name": "Bash", "tool_input": map[string]any{"command": "rm -rf /"}}), policy.Deny, []string{"shell.rm-root"}},
		{"force push", agentInput("PreToolUse", map[string]any{"tool_name": "Bash", "tool_input": map[string]any{"command": "git push -f origin main"}}), policy.Ask, []string{"git.force-push-protected"}},
		{"build", agentInput("PreToolUse", map[string]any{"tool_name": "Bash", "tool_input": map[string]any{"command": "go build ./..."}}), policy.NoOpinion, nil},
		{"own tool", agentInput("PreToolUse", map[string]any{"tool_name": "mcp__gavel__get_policy", "tool_input": map[string]any{}}), policy.Allow, []string{"gavel.mcp-tools"}},
		{"prompt", agentInput("UserPromptSubmit", map[string]any{"prompt": "use " + token}), policy.Deny, []string{"prompt.secret"}},
		{"unknown event", agentInput("Whatever", map[string]any{}), policy.NoOpinion, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := policy.NewInput(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Eval(t.Context(), "gavel/agent/decision", in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tt.outcome || !slices.Equal(d.RuleIDs, tt.rules) {
				t.Errorf("got %v %v (%s), want %v %v", d.Outcome, d.RuleIDs, d.Reason, tt.outcome, tt.rules)
			}
		})
	}

	t.Run("redaction keeps the Bash output shape", func(t *testing.T) {
		in, err := policy.NewInput(agentInput("PostToolUse", map[string]any{
			"tool_name":     "Bash",
			"tool_input":    map[string]any{"command": "env"},
			"tool_response": map[string]any{"stdout": "T=" + token + "\n", "stderr": "", "interrupted": false, "isImage": false},
		}))
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.Eval(t.Context(), "gavel/agent/decision", in)
		if err != nil {
			t.Fatal(err)
		}
		out, ok := d.Fields["updated_tool_output"].(map[string]any)
		if d.Outcome != policy.Allow || !ok {
			t.Fatalf("got %v with fields %v", d.Outcome, d.Fields)
		}
		want := map[string]any{"stdout": "T=[REDACTED:github-token]\n", "stderr": "", "interrupted": false, "isImage": false}
		if fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("updated_tool_output = %v, want %v", out, want)
		}
	})
}

func TestAgentRulesAreListed(t *testing.T) {
	e := compileDefault(t)
	v, err := e.Query(t.Context(), "gavel/agent/rules", policy.Input{})
	if err != nil {
		t.Fatal(err)
	}
	rules, ok := v.([]any)
	if !ok || len(rules) < 10 {
		t.Fatalf("gavel/agent/rules = %v, want the rule list", v)
	}
	for _, r := range rules {
		m, _ := r.(map[string]any)
		for _, k := range []string{"id", "summary", "effect", "events"} {
			if _, ok := m[k]; !ok {
				t.Errorf("rule %v has no %q", r, k)
			}
		}
	}
}

func BenchmarkAgentPreToolUse(b *testing.B) {
	e := compileDefault(b)
	in, err := policy.NewInput(agentInput("PreToolUse", map[string]any{
		"tool_name":  "Bash",
		"tool_input": map[string]any{"command": "cd web && npm ci && npm run build && git push origin feature/x"},
	}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.Eval(ctx, "gavel/agent/decision", in); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.Eval(ctx, "gavel/agent/decision", in); err != nil {
			b.Fatal(err)
		}
	}
}
