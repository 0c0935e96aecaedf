package mcpserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/policy"
)

// ExplainInput is explain_decision's arguments.
type ExplainInput struct {
	DecisionID string `json:"decision_id" jsonschema:"the decision's id: check_action's or validate_code's decision_id, or a hook denial's X-Gavel-Decision-Id"`
}

// Explanation is explain_decision's answer: the decision's audit record.
type Explanation struct {
	DecisionID string   `json:"decision_id"`
	Source     string   `json:"source" jsonschema:"who asked: hook, mcp, validate, envoy or http"`
	Action     string   `json:"action,omitempty" jsonschema:"what was asked, e.g. PreToolUse Bash"`
	Resource   string   `json:"resource,omitempty" jsonschema:"what it acted on: a command, a path, a URL"`
	Outcome    string   `json:"outcome" jsonschema:"allow, deny, ask, no_opinion, or error when no decision could be made"`
	ErrorCode  string   `json:"error_code,omitempty" jsonschema:"why no decision could be made (outcome error)"`
	Reasons    []string `json:"reasons"`
	RuleIDs    []string `json:"rule_ids" jsonschema:"the rules that matched (see get_policy)"`
	// PolicyID is the entry point that decided.
	PolicyID      string `json:"policy_id,omitempty"`
	InputDigest   string `json:"input_digest,omitempty" jsonschema:"sha256 of the input the policy saw"`
	PolicyVersion string `json:"policy_version" jsonschema:"the policy bundle's revision"`
	DryRun        bool   `json:"dry_run,omitempty"`
	Time          string `json:"time" jsonschema:"when it was decided, RFC 3339"`
	CorrelationID string `json:"correlation_id,omitempty" jsonschema:"joins the decisions of one action"`
}

func (t *tools) explainDecision(_ context.Context, _ *mcp.CallToolRequest, in ExplainInput) (*mcp.CallToolResult, Explanation, error) {
	id := strings.TrimSpace(in.DecisionID)
	if id == "" {
		return nil, Explanation{}, fmt.Errorf("decision_id is empty: give the id check_action or validate_code returned")
	}
	var rec policy.Record
	ok := false
	if t.opts.Recent != nil {
		rec, ok = t.opts.Recent.Get(id)
	}
	if !ok {
		held := "the latest decisions"
		if t.opts.RecentSize > 0 {
			held = "the latest " + strconv.Itoa(t.opts.RecentSize)
		}
		return nil, Explanation{}, fmt.Errorf("no decision %s is held (gavel keeps %s in memory; an older or mistyped id, "+
			"or one made by another gavel process, cannot be explained): check the id, or repeat check_action to get a fresh decision", id, held)
	}
	return nil, explanation(rec), nil
}

func explanation(r policy.Record) Explanation {
	return Explanation{
		DecisionID:    r.ID,
		Source:        r.Source,
		Action:        r.Action,
		Resource:      r.Resource,
		Outcome:       r.Outcome,
		ErrorCode:     r.ErrorCode,
		Reasons:       orNone(r.Reasons),
		RuleIDs:       orNone(r.RuleIDs),
		PolicyID:      r.Entry,
		InputDigest:   r.InputDigest,
		PolicyVersion: r.Revision,
		DryRun:        r.DryRun,
		Time:          r.Time.UTC().Format(time.RFC3339Nano),
		CorrelationID: r.CorrelationID,
	}
}
