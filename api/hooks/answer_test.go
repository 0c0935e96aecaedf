package hooks

import (
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
)

func call(t *testing.T, body string) Call {
	t.Helper()
	c, err := Decode([]byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAnswer(t *testing.T) {
	deny := policy.Decision{Outcome: policy.Deny, Reason: "for the user", AgentReason: "for Claude", RuleIDs: []string{"r1"}}
	allow := policy.Decision{Outcome: policy.Allow, Reason: "fine"}
	ask := policy.Decision{Outcome: policy.Ask, Reason: "sure?", UpdatedInput: map[string]any{"command": "ls"}}
	none := policy.Decision{Outcome: policy.NoOpinion}
	ctx := policy.Decision{Outcome: policy.NoOpinion, Fields: map[string]any{"additional_context": "be careful"}}
	redact := policy.Decision{Outcome: policy.Allow, Fields: map[string]any{"updated_tool_output": map[string]any{"stdout": "[REDACTED]"}}}
	kill := policy.Decision{Outcome: policy.Deny, Reason: "stop now", Fields: map[string]any{"continue": false}}
	for _, tc := range []struct {
		name, hook string
		d          policy.Decision
		want       string
	}{
		{"pre deny", `{"hook_event_name":"PreToolUse","tool_name":"Bash"}`, deny,
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"for Claude"}}`},
		{"pre allow", `{"hook_event_name":"PreToolUse"}`, allow,
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"fine"}}`},
		{"pre ask updated", `{"hook_event_name":"PreToolUse"}`, ask,
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"ask","permissionDecisionReason":"sure?","updatedInput":{"command":"ls"}}}`},
		{"pre none", `{"hook_event_name":"PreToolUse"}`, none, ``},
		{"pre context only", `{"hook_event_name":"PreToolUse"}`, ctx,
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","additionalContext":"be careful"}}`},
		{"permission deny", `{"hook_event_name":"PermissionRequest"}`, deny,
			`{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"deny","message":"for Claude","interrupt":false}}}`},
		{"permission allow", `{"hook_event_name":"PermissionRequest"}`, allow,
			`{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"allow"}}}`},
		{"permission ask shows dialog", `{"hook_event_name":"PermissionRequest"}`, ask, ``},
		{"prompt block", `{"hook_event_name":"UserPromptSubmit","prompt":"x"}`, deny, `{"decision":"block","reason":"for Claude"}`},
		{"prompt context", `{"hook_event_name":"UserPromptSubmit"}`, ctx,
			`{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"be careful"}}`},
		{"post redact", `{"hook_event_name":"PostToolUse","tool_name":"Bash"}`, redact,
			`{"hookSpecificOutput":{"hookEventName":"PostToolUse","updatedToolOutput":{"stdout":"[REDACTED]"}}}`},
		{"post redact mcp", `{"hook_event_name":"PostToolUse","tool_name":"mcp__gh__get"}`, redact,
			`{"hookSpecificOutput":{"hookEventName":"PostToolUse","updatedMCPToolOutput":{"stdout":"[REDACTED]"}}}`},
		{"post block", `{"hook_event_name":"PostToolUse","tool_name":"Write"}`, deny, `{"decision":"block","reason":"for Claude"}`},
		{"stop block", `{"hook_event_name":"Stop","stop_hook_active":false}`, deny, `{"decision":"block","reason":"for Claude"}`},
		{"stop already active", `{"hook_event_name":"Stop","stop_hook_active":true}`, deny, ``},
		{"config change", `{"hook_event_name":"ConfigChange","source":"project_settings"}`, deny, `{"decision":"block","reason":"for Claude"}`},
		{"config change managed", `{"hook_event_name":"ConfigChange","source":"policy_settings"}`, deny, ``},
		{"precompact", `{"hook_event_name":"PreCompact","trigger":"auto"}`, deny, `{"decision":"block","reason":"for Claude"}`},
		{"teammate idle", `{"hook_event_name":"TeammateIdle"}`, deny, `{"continue":false,"stopReason":"for Claude"}`},
		{"elicitation accept", `{"hook_event_name":"Elicitation"}`, allow, `{"hookSpecificOutput":{"hookEventName":"Elicitation","action":"accept"}}`},
		{"elicitation decline", `{"hook_event_name":"Elicitation"}`, deny, `{"hookSpecificOutput":{"hookEventName":"Elicitation","action":"decline"}}`},
		{"session end", `{"hook_event_name":"SessionEnd"}`, deny, ``},
		{"session start context", `{"hook_event_name":"SessionStart"}`, ctx,
			`{"hookSpecificOutput":{"hookEventName":"SessionStart","additionalContext":"be careful"}}`},
		{"kill switch", `{"hook_event_name":"PreToolUse"}`, kill, `{"continue":false,"stopReason":"stop now"}`},
		{"dry run", `{"hook_event_name":"PreToolUse"}`, policy.Decision{Outcome: policy.Deny, DryRun: true}, ``},
		{"unknown event", `{"hook_event_name":"BeforeModel"}`, deny, ``},
		{"html is not escaped", `{"hook_event_name":"PreToolUse"}`, policy.Decision{Outcome: policy.Deny, Reason: "a <b> & c"},
			`{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"a <b> & c"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Answer(call(t, tc.hook), tc.d)); got != tc.want {
				t.Errorf("answer\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAnswerCutsLongReasons(t *testing.T) {
	long := strings.Repeat("é", MaxString)
	got := Answer(call(t, `{"hook_event_name":"UserPromptSubmit"}`), policy.Decision{Outcome: policy.Deny, Reason: long})
	c, err := Decode(got, "answer")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Hook["reason"].(string)
	if len(r) > MaxString || !strings.HasSuffix(r, "…") {
		t.Fatalf("reason of %d bytes, want at most %d ending in …", len(r), MaxString)
	}
}

func TestFailClosed(t *testing.T) {
	for hook, want := range map[string]string{
		`{"hook_event_name":"PreToolUse"}`:        `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"down"}}`,
		`{"hook_event_name":"PermissionRequest"}`: `{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"deny","message":"down","interrupt":false}}}`,
		`{"hook_event_name":"UserPromptSubmit"}`:  `{"decision":"block","reason":"down"}`,
		`{"hook_event_name":"Elicitation"}`:       `{"hookSpecificOutput":{"hookEventName":"Elicitation","action":"decline"}}`,
		`{"hook_event_name":"PostToolUse"}`:       ``,
		`{"hook_event_name":"Stop"}`:              ``,
	} {
		if got := string(FailClosed(call(t, hook), "down")); got != want {
			t.Errorf("%s: got %s, want %s", hook, got, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for body, want := range map[string]string{
		``:                           "empty body",
		`{"hook_event_name":`:        "unexpected end",
		`[1,2]`:                      "JSON array, want an object",
		`{"a":1} {"b":2}`:            "more than one JSON value",
		`{"hook_event_name":7}`:      "hook_event_name is a JSON number",
		`{"session_id":"s"}`:         "hook_event_name is missing",
		"{\n\"a\": tru}":             "line 2",
		`{"hook_event_name":"X"} xx`: "more than one",
	} {
		_, err := Decode([]byte(body), "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) = %v, want an error containing %q", body, err, want)
		}
	}
	c, err := Decode([]byte(`{"tool_name":"Bash"}`), "PreToolUse")
	if err != nil || c.Event.Name != "PreToolUse" || !c.Known {
		t.Fatalf("path event: %+v, %v", c.Event, err)
	}
}

func TestCorrelationID(t *testing.T) {
	pre := call(t, `{"hook_event_name":"PreToolUse","session_id":"s1","tool_use_id":"tu1"}`)
	if got := pre.CorrelationID(); got != "s1/tu1/PreToolUse" {
		t.Errorf("got %s", got)
	}
	a := call(t, `{"hook_event_name":"PermissionRequest","session_id":"s1","tool_name":"Bash","tool_input":{"command":"ls","description":"x"}}`)
	b := call(t, `{"hook_event_name":"PermissionRequest","session_id":"s1","tool_name":"Bash","tool_input":{"description":"x","command":"ls"}}`)
	if a.CorrelationID() != b.CorrelationID() || !strings.HasPrefix(a.CorrelationID(), "s1/Bash:") {
		t.Errorf("permission request ids %s, %s: want equal, keyed by tool and input", a.CorrelationID(), b.CorrelationID())
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}`,
		`{"hook_event_name":"PostToolUse","tool_response":{"stdout":"x"}}`, `[]`, `{`, `{"hook_event_name":1}`, `null`} {
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, event string) {
		c, err := Decode(body, event)
		if err != nil {
			return
		}
		if c.Hook == nil || c.Event.Name == "" {
			t.Fatalf("decoded without a hook or an event: %+v", c)
		}
		if _, err := c.Input(Meta{}); err != nil {
			t.Fatalf("input of a decoded hook: %v", err)
		}
		c.CorrelationID()
		c.Summary()
		// Whatever the decision, the answer is empty or one JSON object.
		for _, d := range []policy.Decision{{Outcome: policy.Deny, Reason: string(body)}, {Outcome: policy.Allow}} {
			if a := Answer(c, d); a != nil {
				if _, err := Decode(a, "x"); err != nil {
					t.Fatalf("answer %s is not a JSON object: %v", a, err)
				}
			}
		}
	})
}
