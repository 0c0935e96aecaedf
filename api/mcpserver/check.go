package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
)

// CheckInput is check_action's arguments: a tool call as a PreToolUse hook
// would see it.
type CheckInput struct {
	ToolName  string         `json:"tool_name" jsonschema:"the tool you intend to call, as Claude Code names it: Bash, Edit, Write, Read, WebFetch, mcp__server__tool..."`
	ToolInput map[string]any `json:"tool_input" jsonschema:"the exact arguments you intend to pass, e.g. {\"command\": \"git push --force\"} for Bash or {\"file_path\": ...} for Edit"`
	Cwd       string         `json:"cwd,omitempty" jsonschema:"the working directory the call runs in (the project root when omitted)"`
	Intent    string         `json:"intent,omitempty" jsonschema:"why you need this action, in a sentence; it is logged, not decided on"`
}

// CheckOutput is check_action's answer.
type CheckOutput struct {
	Decision string `json:"decision" jsonschema:"allow: go ahead; deny: the hook will block it (read reason); ask: a human will be asked; no_opinion: policy has nothing to say and the normal permission flow applies"`
	Reason   string `json:"reason" jsonschema:"why, written for the agent"`
	// RuleIDs name the rules that decided.
	RuleIDs []string `json:"rule_ids" jsonschema:"the ids of the rules that decided (see get_policy)"`
	// PolicyID is the entry point that decided.
	PolicyID      string `json:"policy_id" jsonschema:"the policy entry point that decided"`
	PolicyVersion string `json:"policy_version" jsonschema:"the policy bundle's revision"`
	DecisionID    string `json:"decision_id" jsonschema:"the decision's id, for explain_decision"`
	// DryRun: the policy's outcome is logged but not enforced.
	DryRun bool `json:"dry_run,omitempty" jsonschema:"true when the rule runs in dry-run mode: its outcome is logged, not enforced"`
	// UpdatedInput is the input the hook would run the tool with, when the
	// policy rewrites it.
	UpdatedInput map[string]any `json:"updated_input,omitempty" jsonschema:"the arguments the hook would run the tool with, when policy rewrites them"`
}

func (t *tools) checkAction(ctx context.Context, _ *mcp.CallToolRequest, in CheckInput) (*mcp.CallToolResult, CheckOutput, error) {
	start := time.Now()
	if in.ToolName == "" {
		return nil, CheckOutput{}, errors.New("tool_name is empty: give the tool you intend to call, e.g. Bash")
	}
	hook := map[string]any{"tool_name": in.ToolName, "tool_input": orEmpty(in.ToolInput)}
	if in.Cwd != "" {
		hook["cwd"] = in.Cwd
	}
	c := hooks.NewCall("PreToolUse", hook)
	p := t.principal(ctx)
	pin, err := c.Input(hooks.Meta{Principal: p, ProjectDir: in.Cwd, Transport: "mcp"})
	var d policy.Decision
	if err == nil {
		d, err = t.opts.Decider.Decide(policy.WithEvalTimeout(ctx, hooks.DefaultEvalTimeout), t.opts.EntryPoint, pin)
	} else {
		err = fmt.Errorf("%w: %w", policy.ErrBadInput, err)
	}
	if d.Entry == "" {
		d.Entry = t.opts.EntryPoint
	}
	rec := checkRecord(c, p, d, err, time.Since(start))
	if t.opts.Audit != nil {
		t.opts.Audit.Record(rec)
	}
	t.opts.Logger.Info("check_action", "decision_id", rec.ID, "tool", in.ToolName, "outcome", rec.Outcome,
		"rules", rec.RuleIDs, "principal", p.Name, "intent", in.Intent)
	if err != nil {
		code := policy.ReasonCode(err)
		return nil, CheckOutput{}, fmt.Errorf("governance error (%s): no decision could be made, and the PreToolUse hook fails closed, "+
			"so this action would be blocked until the policy can be evaluated (decision %s)", code, rec.ID)
	}
	return nil, checkOutput(d, rec.ID), nil
}

// checkOutput maps a decision to check_action's answer: what the hook
// enforces (a dry-run decision enforces nothing), with the reason meant for
// the agent.
func checkOutput(d policy.Decision, id string) CheckOutput {
	out := CheckOutput{
		Decision:      d.Outcome.String(),
		Reason:        d.AgentReason,
		RuleIDs:       orNone(d.RuleIDs),
		PolicyID:      d.Entry,
		PolicyVersion: d.Revision,
		DecisionID:    id,
		UpdatedInput:  d.UpdatedInput,
	}
	if out.Reason == "" {
		out.Reason = d.Reason
	}
	if d.DryRun {
		out.DryRun = true
		if d.Outcome != policy.NoOpinion {
			out.Reason = fmt.Sprintf("dry run, not enforced: policy would answer %s: %s", d.Outcome, out.Reason)
		}
		out.Decision, out.UpdatedInput = policy.NoOpinion.String(), nil
	}
	if out.Reason == "" {
		switch {
		case d.Outcome == policy.Deny:
			out.Reason = "denied by policy"
		case d.Outcome == policy.NoOpinion:
			out.Reason = "no rule applies; the agent's own permission settings decide"
		}
	}
	return out
}

// checkRecord is the audit record of a check. Its correlation id joins the
// checks of one tool call: the tool and the digest of its input.
func checkRecord(c hooks.Call, p auth.Principal, d policy.Decision, err error, elapsed time.Duration) policy.Record {
	action, resource := c.Summary()
	b, _ := json.Marshal(c.Hook["tool_input"]) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	rec := policy.Record{
		ID:            d.ID,
		Time:          time.Now().UTC(),
		Source:        policy.SourceMCP,
		Principal:     p.Name,
		Action:        action,
		Resource:      resource,
		Outcome:       d.Outcome.String(),
		RuleIDs:       d.RuleIDs,
		Entry:         d.Entry,
		Revision:      d.Revision,
		DryRun:        d.DryRun,
		Cached:        d.Cached,
		Latency:       elapsed,
		CorrelationID: "mcp/" + c.ToolName() + ":" + hex.EncodeToString(sum[:8]),
		InputDigest:   c.Digest,
	}
	if rec.ID == "" {
		rec.ID = policy.NewDecisionID()
	}
	switch {
	case err != nil:
		rec.Outcome, rec.ErrorCode = "error", policy.ReasonCode(err)
		rec.Reasons = []string{err.Error()}
	default:
		for _, r := range []string{d.Reason, d.AgentReason} {
			if r != "" && (len(rec.Reasons) == 0 || rec.Reasons[0] != r) {
				rec.Reasons = append(rec.Reasons, r)
			}
		}
	}
	return rec
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
