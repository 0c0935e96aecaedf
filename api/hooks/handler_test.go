package hooks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
)

// testPolicy denies Bash commands that mention "forbidden" and blocks
// prompts that say "stop"; it errors (a conflict) on a tool named "Broken".
const testPolicy = `package gavel.agent

# METADATA
# entrypoint: true
decision := {"decision": "deny", "reason": "no forbidden things", "rule_ids": ["t.forbidden"]} if {
	contains(input.hook.tool_input.command, "forbidden")
} else := {"decision": "deny", "reason": "stopped", "rule_ids": ["t.stop"]} if {
	input.hook.prompt == "stop"
} else := {"decision": "allow", "reason": input.principal.sub} if {
	input.hook.tool_name == "Read"
	input.session.project_dir == "/proj"
} else := {"decision": "no_opinion"}

decision := {"decision": "allow"} if input.hook.tool_name == "Broken"
`

func newServer(t *testing.T, activate bool, audit policy.Sink) *httptest.Server {
	t.Helper()
	svc := policy.NewService(policy.Options{})
	if activate {
		b, err := policy.LoadFS("test", fstest.MapFS{"agent.rego": {Data: []byte(testPolicy)}}, policy.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Activate(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	tokens := auth.NewTokens(map[string]auth.Principal{"tok": {Name: "dev", Roles: []string{auth.RoleAgent}}})
	h := tokens.Require(auth.RoleAgent, hooks.Handler(hooks.Options{Decider: svc, Audit: audit, MaxBody: 1 << 10}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func post(t *testing.T, srv *httptest.Server, path, token, body string, hdr ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func TestHandler(t *testing.T) {
	recent := policy.NewRecent(10)
	srv := newServer(t, true, recent)
	const path = "/v1/hooks/claude-code"

	r := post(t, srv, path, "tok", `{"hook_event_name":"PreToolUse","session_id":"s","tool_use_id":"t1","tool_name":"Bash","tool_input":{"command":"forbidden"}}`)
	want := `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"no forbidden things"}}`
	if r.code != 200 || r.body != want || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("deny: %d %s %v", r.code, r.body, r.header)
	}
	id := r.header.Get(hooks.HeaderDecisionID)
	if id == "" || r.header.Get(hooks.HeaderPolicyVersion) == "" {
		t.Fatalf("decision id and policy version headers missing: %v", r.header)
	}
	rec, ok := recent.Get(id)
	if !ok || rec.Outcome != "deny" || rec.Source != policy.SourceHook || rec.Principal != "dev" ||
		rec.Action != "PreToolUse Bash" || rec.Resource != "forbidden" || rec.CorrelationID != "s/t1/PreToolUse" ||
		len(rec.RuleIDs) != 1 || rec.RuleIDs[0] != "t.forbidden" || len(rec.InputDigest) != 64 {
		t.Fatalf("audit record: %+v (found %v)", rec, ok)
	}

	// The alias names the event when the body does not.
	r = post(t, srv, path+"/UserPromptSubmit", "tok", `{"prompt":"stop"}`)
	if r.code != 200 || r.body != `{"decision":"block","reason":"stopped"}` {
		t.Fatalf("alias: %d %s", r.code, r.body)
	}
	// The principal and the forwarder's project dir reach the policy.
	r = post(t, srv, path, "tok", `{"hook_event_name":"PreToolUse","tool_name":"Read","cwd":"/elsewhere"}`, "X-Gavel-Project-Dir", "/proj")
	if !strings.Contains(r.body, `"permissionDecision":"allow","permissionDecisionReason":"dev"`) {
		t.Fatalf("principal/project dir: %s", r.body)
	}
	// No opinion: 200, empty body, still numbered.
	r = post(t, srv, path, "tok", `{"hook_event_name":"PreToolUse","tool_name":"Read","unknown_field":[1,2]}`)
	if r.code != 200 || r.body != "" || r.header.Get(hooks.HeaderDecisionID) == "" {
		t.Fatalf("no opinion: %d %q %v", r.code, r.body, r.header)
	}
	// Unknown events: 200, no opinion, not evaluated.
	r = post(t, srv, path, "tok", `{"hook_event_name":"BeforeModel"}`)
	if r.code != 200 || r.body != "" || r.header.Get(hooks.HeaderDecisionID) != "" {
		t.Fatalf("unknown event: %d %q", r.code, r.body)
	}
	// A policy error fails closed for a gating event, with the reason code.
	r = post(t, srv, path, "tok", `{"hook_event_name":"PreToolUse","tool_name":"Broken","tool_input":{"command":"forbidden"}}`)
	if r.code != 200 || !strings.Contains(r.body, `"permissionDecision":"deny"`) || r.header.Get(hooks.HeaderError) != "eval_error" {
		t.Fatalf("policy error: %d %s %v", r.code, r.body, r.header)
	}
	// ... and answers nothing for an observation event.
	r = post(t, srv, path, "tok", `{"hook_event_name":"PostToolUse","tool_name":"Broken","tool_input":{"command":"forbidden"}}`)
	if r.code != 200 || r.body != "" {
		t.Fatalf("policy error, observation: %d %s", r.code, r.body)
	}
}

func TestHandlerRejects(t *testing.T) {
	srv := newServer(t, true, nil)
	const path = "/v1/hooks/claude-code"
	for _, tc := range []struct {
		name, token, body string
		code              int
		want              string
	}{
		{"no token", "", `{"hook_event_name":"Stop"}`, 401, "bearer token"},
		{"wrong token", "nope", `{"hook_event_name":"Stop"}`, 401, "bearer token"},
		{"malformed", "tok", `{"hook_event_name":"Stop",`, 400, "not JSON"},
		{"not an object", "tok", `"Stop"`, 400, "want an object"},
		{"too large", "tok", `{"prompt":"` + strings.Repeat("x", 2000) + `"}`, 400, "over the limit of 1024 bytes"},
	} {
		r := post(t, srv, path, tc.token, tc.body)
		if r.code != tc.code || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, r.code, r.body, tc.code, tc.want)
		}
	}
}

func TestHandlerNoBundleFailsClosed(t *testing.T) {
	srv := newServer(t, false, nil)
	r := post(t, srv, "/v1/hooks/claude-code", "tok", `{"hook_event_name":"PermissionRequest","tool_name":"Bash"}`)
	want := `{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"deny","message":"governance error (no_bundle): the action is blocked until policy can be evaluated","interrupt":false}}}`
	if r.code != 200 || r.body != want || r.header.Get(hooks.HeaderError) != "no_bundle" {
		t.Fatalf("%d %s %v", r.code, r.body, r.header)
	}
}
