package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/policy"
)

// PolicyInput is get_policy's arguments.
type PolicyInput struct {
	Topic string `json:"topic,omitempty" jsonschema:"only rules whose id or summary contains this, case-insensitive (e.g. git, secret, rm); all rules when omitted"`
}

// Rule is one rule of the agent policy.
type Rule struct {
	ID      string   `json:"id" jsonschema:"the rule's id, as rule_ids name it"`
	Summary string   `json:"summary" jsonschema:"what the rule does"`
	Effect  string   `json:"effect" jsonschema:"what it does when it matches: deny, ask, allow, block, context..."`
	Events  []string `json:"events" jsonschema:"the hook events it applies to, e.g. PreToolUse"`
}

// PolicyOutput is get_policy's answer.
type PolicyOutput struct {
	Rules   []Rule `json:"rules"`
	Version string `json:"version" jsonschema:"the policy bundle's revision"`
}

func (t *tools) getPolicy(ctx context.Context, _ *mcp.CallToolRequest, in PolicyInput) (*mcp.CallToolResult, PolicyOutput, error) {
	p := t.principal(ctx)
	roles := make([]any, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = r
	}
	pin, err := policy.NewInput(map[string]any{
		"principal": map[string]any{"sub": p.Name, "roles": roles},
		"topic":     in.Topic,
	})
	if err != nil {
		return nil, PolicyOutput{}, err
	}
	rev := t.opts.Decider.Revision()
	v, err := t.opts.Decider.Query(ctx, t.opts.RulesEntryPoint, pin)
	if err != nil {
		code := policy.ReasonCode(err)
		t.opts.Logger.Warn("get_policy failed", "entry", t.opts.RulesEntryPoint, "reason", code, "err", err)
		if errors.Is(err, policy.ErrUndefined) || errors.Is(err, policy.ErrUnknownEntry) {
			return nil, PolicyOutput{}, fmt.Errorf("the active policy bundle publishes no rule list (entry point %s: %s); "+
				"check_action still answers for any tool call", t.opts.RulesEntryPoint, code)
		}
		return nil, PolicyOutput{}, fmt.Errorf("governance error (%s): the rule list could not be read", code)
	}
	rules, err := parseRules(v)
	if err != nil {
		t.opts.Logger.Error("get_policy: bad rule list", "entry", t.opts.RulesEntryPoint, "err", err)
		return nil, PolicyOutput{}, fmt.Errorf("governance error (%s): the policy's rule list is malformed", policy.ReasonInvalidDecision)
	}
	return nil, PolicyOutput{Rules: filterRules(rules, in.Topic), Version: rev}, nil
}

// parseRules reads the rules entry point's value: an array (or set) of
// {id, summary, effect, events} objects. It sorts them by id.
func parseRules(v any) ([]Rule, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: rule list is %T, want an array of rules", policy.ErrInvalidDecision, v)
	}
	out := make([]Rule, 0, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: rule %d is %T, want an object", policy.ErrInvalidDecision, i, e)
		}
		r := Rule{Events: []string{}}
		r.ID, _ = m["id"].(string)
		r.Summary, _ = m["summary"].(string)
		r.Effect, _ = m["effect"].(string)
		if r.ID == "" {
			return nil, fmt.Errorf("%w: rule %d has no id", policy.ErrInvalidDecision, i)
		}
		switch ev := m["events"].(type) {
		case nil:
		case []any:
			for _, x := range ev {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("%w: rule %s: events hold a %T, want strings", policy.ErrInvalidDecision, r.ID, x)
				}
				r.Events = append(r.Events, s)
			}
		default:
			return nil, fmt.Errorf("%w: rule %s: events is %T, want an array of event names", policy.ErrInvalidDecision, r.ID, ev)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// filterRules keeps the rules whose id or summary contains topic, ignoring
// case; all of them when topic is blank.
func filterRules(rules []Rule, topic string) []Rule {
	topic = strings.ToLower(strings.TrimSpace(topic))
	if topic == "" {
		return rules
	}
	out := []Rule{}
	for _, r := range rules {
		if strings.Contains(strings.ToLower(r.ID), topic) || strings.Contains(strings.ToLower(r.Summary), topic) {
			out = append(out, r)
		}
	}
	return out
}
