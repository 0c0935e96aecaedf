package mcpserver

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/gavel-dev/gavel/policy"
)

func TestMCPCheckOutput(t *testing.T) {
	for _, tc := range []struct {
		name       string
		d          policy.Decision
		decision   string
		reason     string
		dryRun     bool
		hasUpdated bool
	}{
		{"deny prefers the agent's reason", policy.Decision{Outcome: policy.Deny, Reason: "user", AgentReason: "agent"}, "deny", "agent", false, false},
		{"deny without reasons", policy.Decision{Outcome: policy.Deny}, "deny", "denied by policy", false, false},
		{"allow with the user's reason", policy.Decision{Outcome: policy.Allow, Reason: "fine"}, "allow", "fine", false, false},
		{"allow rewriting the input", policy.Decision{Outcome: policy.Allow, UpdatedInput: map[string]any{"command": "ls"}}, "allow", "", false, true},
		{"no opinion", policy.Decision{}, "no_opinion", "no rule applies; the agent's own permission settings decide", false, false},
		{"dry-run deny enforces nothing", policy.Decision{Outcome: policy.Deny, Reason: "r", DryRun: true, UpdatedInput: map[string]any{"a": 1}},
			"no_opinion", "dry run, not enforced: policy would answer deny: r", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := checkOutput(tc.d, "id")
			if out.Decision != tc.decision || out.Reason != tc.reason || out.DryRun != tc.dryRun || (out.UpdatedInput != nil) != tc.hasUpdated {
				t.Errorf("checkOutput = %+v", out)
			}
			if out.RuleIDs == nil {
				t.Error("rule_ids is null, want []")
			}
		})
	}
}

func TestMCPParseRules(t *testing.T) {
	var v any
	if err := json.Unmarshal([]byte(`[{"id": "b", "summary": "Bee", "effect": "deny", "events": ["PreToolUse"]}, {"id": "a", "summary": "Git pushes"}]`), &v); err != nil {
		t.Fatal(err)
	}
	rules, err := parseRules(v)
	if err != nil || len(rules) != 2 || rules[0].ID != "a" || rules[0].Events == nil || !slices.Equal(rules[1].Events, []string{"PreToolUse"}) {
		t.Fatalf("parseRules = %+v, %v", rules, err)
	}
	if got := filterRules(rules, " git "); len(got) != 1 || got[0].ID != "a" {
		t.Errorf("filter git = %+v", got)
	}
	if got := filterRules(rules, "zzz"); got == nil || len(got) != 0 {
		t.Errorf("filter zzz = %#v, want an empty list", got)
	}
	for _, bad := range []string{`{"id": "a"}`, `[1]`, `[{"summary": "no id"}]`, `[{"id": "a", "events": "PreToolUse"}]`, `[{"id": "a", "events": [1]}]`} {
		var v any
		_ = json.Unmarshal([]byte(bad), &v)
		if _, err := parseRules(v); err == nil {
			t.Errorf("parseRules(%s): no error", bad)
		}
	}
}
