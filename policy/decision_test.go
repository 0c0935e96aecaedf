package policy_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/policy"
)

func TestParseDecision(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want policy.Decision // Fields is checked separately
	}{
		{"true", `true`, policy.Decision{Outcome: policy.Allow}},
		{"false", `false`, policy.Decision{Outcome: policy.Deny}},
		{"allowed true", `{"allowed": true}`, policy.Decision{Outcome: policy.Allow}},
		{"allowed false", `{"allowed": false}`, policy.Decision{Outcome: policy.Deny}},
		{"OPA-Envoy denial", `{
			"allowed": false,
			"http_status": 403,
			"body": "{\"error\": \"forbidden\"}",
			"headers": {"content-type": "application/json", "x-reason": ["a", "b"]},
			"response_headers_to_add": [{"set-cookie": "a=1"}, {"set-cookie": ["b=2", "c=3"]}, {"cache-control": "no-store"}],
			"request_headers_to_remove": ["authorization", "cookie"],
			"query_parameters_to_set": {"page": "1", "tag": ["x", "y"]},
			"query_parameters_to_remove": ["debug"],
			"dynamic_metadata": {"tenant": "acme", "scores": [1, 2]}
		}`, policy.Decision{
			Outcome:    policy.Deny,
			HTTPStatus: 403,
			Body:       `{"error": "forbidden"}`,
			Headers:    []policy.Header{{"content-type", "application/json"}, {"x-reason", "a"}, {"x-reason", "b"}},
			// Sorted by name; values of one name keep their order.
			ResponseHeadersToAdd:    []policy.Header{{"cache-control", "no-store"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}, {"set-cookie", "c=3"}},
			RequestHeadersToRemove:  []string{"authorization", "cookie"},
			QueryParametersToSet:    []policy.Header{{"page", "1"}, {"tag", "x"}, {"tag", "y"}},
			QueryParametersToRemove: []string{"debug"},
			DynamicMetadata:         map[string]any{"tenant": "acme", "scores": []any{json.Number("1"), json.Number("2")}},
		}},
		{"headers as an empty object", `{"allowed": true, "headers": {}}`, policy.Decision{Outcome: policy.Allow}},
		{"null fields are absent", `{"allowed": true, "reason": null, "headers": null, "http_status": null, "ttl": null, "rule_ids": null}`,
			policy.Decision{Outcome: policy.Allow}},
		{"single strings for lists", `{"allowed": true, "request_headers_to_remove": "cookie", "rule_ids": "r1"}`,
			policy.Decision{Outcome: policy.Allow, RequestHeadersToRemove: []string{"cookie"}, RuleIDs: []string{"r1"}}},
		{"gavel allow", `{"decision": "allow", "reason": "ok", "rule_ids": ["a", "b"]}`,
			policy.Decision{Outcome: policy.Allow, Reason: "ok", RuleIDs: []string{"a", "b"}}},
		{"gavel deny with reasons", `{"decision": "deny", "reasons": ["one", "two"], "agent_reason": "for the agent"}`,
			policy.Decision{Outcome: policy.Deny, Reason: "one; two", AgentReason: "for the agent"}},
		{"reason wins over reasons", `{"decision": "deny", "reason": "this", "reasons": ["not", "these"]}`,
			policy.Decision{Outcome: policy.Deny, Reason: "this"}},
		{"gavel ask with ttl string", `{"decision": "ask", "reason": "confirm", "ttl": "1m30s"}`,
			policy.Decision{Outcome: policy.Ask, Reason: "confirm", TTL: 90 * time.Second}},
		{"ttl in seconds", `{"decision": "allow", "ttl": 1.5}`, policy.Decision{Outcome: policy.Allow, TTL: 1500 * time.Millisecond}},
		{"ttl zero", `{"decision": "allow", "ttl": 0}`, policy.Decision{Outcome: policy.Allow}},
		{"no_opinion", `{"decision": "no_opinion"}`, policy.Decision{Outcome: policy.NoOpinion}},
		{"empty decision is no opinion", `{"decision": ""}`, policy.Decision{Outcome: policy.NoOpinion}},
		{"updated_input", `{"decision": "allow", "updated_input": {"command": "ls -la"}}`,
			policy.Decision{Outcome: policy.Allow, UpdatedInput: map[string]any{"command": "ls -la"}}},
		{"allowed wins over decision", `{"allowed": false, "decision": "allow"}`, policy.Decision{Outcome: policy.Deny}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decodeJSON(t, tt.doc)
			got, err := policy.ParseDecision(v)
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := v.(map[string]any); ok {
				if !reflect.DeepEqual(got.Fields, m) {
					t.Errorf("Fields = %v, want the whole object", got.Fields)
				}
			} else if got.Fields != nil {
				t.Errorf("Fields = %v for a boolean result", got.Fields)
			}
			got.Fields = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if got.Allowed() != (tt.want.Outcome == policy.Allow) {
				t.Errorf("Allowed() = %v", got.Allowed())
			}
		})
	}
}

func TestParseDecisionInvalid(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"null", `null`, "result is null, want a boolean or an object"},
		{"number", `1`, "result is a number"},
		{"string", `"allow"`, "result is a string"},
		{"array", `[true]`, "result is an array"},
		{"neither allowed nor decision", `{"reason": "x"}`, `neither "allowed" nor "decision"`},
		{"allowed is a string", `{"allowed": "true"}`, `"allowed" is a string, want a boolean`},
		{"allowed is null", `{"allowed": null}`, `"allowed" is null`},
		{"decision is a boolean", `{"decision": true}`, `"decision" is a boolean, want a string`},
		{"decision unknown", `{"decision": "maybe"}`, `"decision" is "maybe", want allow, deny, ask or no_opinion`},
		{"reason is a number", `{"allowed": true, "reason": 3}`, `"reason" is a number, want a string`},
		{"reasons has a number", `{"allowed": true, "reasons": ["a", 2]}`, `"reasons"[1] is a number`},
		{"reasons is an object", `{"allowed": true, "reasons": {}}`, `"reasons" is an object, want an array of strings`},
		{"agent_reason is an array", `{"decision": "deny", "agent_reason": []}`, `"agent_reason" is an array`},
		{"rule_ids is a boolean", `{"decision": "deny", "rule_ids": true}`, `"rule_ids" is a boolean`},
		{"body is an object", `{"allowed": false, "body": {}}`, `"body" is an object, want a string`},
		{"http_status 999", `{"allowed": false, "http_status": 999}`, `"http_status" 999 is not an HTTP status code`},
		{"http_status 0", `{"allowed": false, "http_status": 0}`, `"http_status" 0 is not an HTTP status code`},
		{"http_status fraction", `{"allowed": false, "http_status": 403.5}`, `"http_status" 403.5 is not an HTTP status code`},
		{"http_status string", `{"allowed": false, "http_status": "403"}`, `"http_status" is a string, want a number`},
		{"header value is a number", `{"allowed": true, "headers": {"x": 1}}`, `"headers": header "x" is a number`},
		{"header array holds a number", `{"allowed": true, "headers": {"x": ["a", 1]}}`, `"headers": header "x" value [1] is a number`},
		{"headers array holds a string", `{"allowed": true, "headers": ["x: y"]}`, `"headers"[0] is a string, want an object`},
		{"headers is a string", `{"allowed": true, "headers": "x: y"}`, `"headers" is a string, want an object or an array of objects`},
		{"response_headers_to_add", `{"allowed": true, "response_headers_to_add": {"x": true}}`, `"response_headers_to_add": header "x" is a boolean`},
		{"query_parameters_to_set", `{"allowed": true, "query_parameters_to_set": 1}`, `"query_parameters_to_set" is a number`},
		{"query_parameters_to_remove", `{"allowed": true, "query_parameters_to_remove": [null]}`, `"query_parameters_to_remove"[0] is null`},
		{"request_headers_to_remove", `{"allowed": true, "request_headers_to_remove": 1}`, `"request_headers_to_remove" is a number`},
		{"dynamic_metadata is an array", `{"allowed": true, "dynamic_metadata": []}`, `"dynamic_metadata" is an array, want an object`},
		{"updated_input is a string", `{"decision": "allow", "updated_input": "ls"}`, `"updated_input" is a string, want an object`},
		{"ttl bad string", `{"decision": "allow", "ttl": "soon"}`, `"ttl" "soon" is not a duration`},
		{"ttl negative string", `{"decision": "allow", "ttl": "-1s"}`, `"ttl" "-1s" is not a duration`},
		{"ttl negative number", `{"decision": "allow", "ttl": -1}`, `"ttl" -1 is not a number of seconds`},
		{"ttl overflows a duration", `{"decision": "allow", "ttl": 1e10}`, `"ttl" 1e10 is not a number of seconds`},
		{"ttl is a boolean", `{"decision": "allow", "ttl": true}`, `"ttl" is a boolean`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.ParseDecision(decodeJSON(t, tt.doc))
			if !errors.Is(err, policy.ErrInvalidDecision) {
				t.Fatalf("error %v does not wrap ErrInvalidDecision", err)
			}
			wantErr(t, err, tt.want)
		})
	}
}

func TestParseDecisionGoValues(t *testing.T) {
	// A result built in Go, not decoded from JSON, is described by its type.
	_, err := policy.ParseDecision(struct{}{})
	wantErr(t, err, "result is struct {}")
}

func TestOutcomeText(t *testing.T) {
	for _, o := range []policy.Outcome{policy.NoOpinion, policy.Allow, policy.Deny, policy.Ask} {
		t.Run(o.String(), func(t *testing.T) {
			text, err := o.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back policy.Outcome
			if err := back.UnmarshalText(text); err != nil || back != o {
				t.Errorf("round trip of %q: %v, %v", text, back, err)
			}
		})
	}
	var o policy.Outcome
	if err := o.UnmarshalText([]byte("permit")); err == nil {
		t.Error("UnmarshalText accepted an unknown outcome")
	}
	// A decision round-trips through JSON with the outcome as its name.
	raw, err := json.Marshal(policy.Decision{Outcome: policy.Ask, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var d policy.Decision
	if err := json.Unmarshal(raw, &d); err != nil || d.Outcome != policy.Ask || d.TTL != time.Second {
		t.Errorf("JSON round trip: %s -> %+v, %v", raw, d, err)
	}
}
