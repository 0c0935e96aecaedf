package hooks

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gavel-dev/gavel/policy"
)

// MaxString is the longest string Claude Code shows in full; longer output
// goes to a file and Claude gets a preview, so reasons are cut to it.
const MaxString = 10000

// output is Claude Code's hook output. Field order is the documented one.
type output struct {
	Continue           *bool     `json:"continue,omitempty"`
	StopReason         string    `json:"stopReason,omitempty"`
	SystemMessage      string    `json:"systemMessage,omitempty"`
	Decision           string    `json:"decision,omitempty"`
	Reason             string    `json:"reason,omitempty"`
	HookSpecificOutput *specific `json:"hookSpecificOutput,omitempty"`
}

type specific struct {
	HookEventName            string          `json:"hookEventName"`
	PermissionDecision       string          `json:"permissionDecision,omitempty"`
	PermissionDecisionReason string          `json:"permissionDecisionReason,omitempty"`
	Decision                 *dialogDecision `json:"decision,omitempty"`
	Action                   string          `json:"action,omitempty"`
	Content                  map[string]any  `json:"content,omitempty"`
	UpdatedInput             map[string]any  `json:"updatedInput,omitempty"`
	UpdatedToolOutput        any             `json:"updatedToolOutput,omitempty"`
	UpdatedMCPToolOutput     any             `json:"updatedMCPToolOutput,omitempty"`
	AdditionalContext        string          `json:"additionalContext,omitempty"`
}

type dialogDecision struct {
	Behavior           string         `json:"behavior"`
	UpdatedInput       map[string]any `json:"updatedInput,omitempty"`
	UpdatedPermissions []any          `json:"updatedPermissions,omitempty"`
	Message            string         `json:"message,omitempty"`
	Interrupt          *bool          `json:"interrupt,omitempty"`
}

// Answer is the body Claude Code reads for decision d on call c: the
// event's own output schema, or nil for "no opinion". A dry-run decision is
// no opinion. The policy's object result may add, beyond the decision:
//
//	additional_context   context for Claude (events that read it)
//	updated_tool_output  PostToolUse: the tool's output, rewritten (redaction)
//	system_message       a warning shown to the user
//	continue: false      stop Claude entirely (with reason as stopReason)
//	content              Elicitation: the form content to accept with
//	updated_permissions  PermissionRequest allow: permission updates
func Answer(c Call, d policy.Decision) []byte {
	if !c.Known || d.DryRun {
		return nil
	}
	var o output
	if msg, _ := d.Fields["system_message"].(string); msg != "" {
		o.SystemMessage = truncate(msg, MaxString)
	}
	if cont, ok := d.Fields["continue"].(bool); ok && !cont {
		f := false
		o.Continue, o.StopReason = &f, truncate(userReason(d), MaxString)
		return encode(o)
	}
	ctx, _ := d.Fields["additional_context"].(string)
	ctx = truncate(ctx, MaxString)
	spec := &specific{HookEventName: c.Event.Name}
	switch c.Event.Kind {
	case Permission:
		switch d.Outcome {
		case policy.Allow, policy.Ask:
			spec.PermissionDecision = d.Outcome.String()
			spec.PermissionDecisionReason = truncate(userReason(d), MaxString)
			spec.UpdatedInput = d.UpdatedInput
		case policy.Deny:
			spec.PermissionDecision = "deny"
			spec.PermissionDecisionReason = truncate(agentReason(d), MaxString)
		}
		spec.AdditionalContext = ctx
	case Dialog:
		switch d.Outcome {
		case policy.Allow:
			perms, _ := d.Fields["updated_permissions"].([]any)
			spec.Decision = &dialogDecision{Behavior: "allow", UpdatedInput: d.UpdatedInput, UpdatedPermissions: perms}
		case policy.Deny:
			f := false
			spec.Decision = &dialogDecision{Behavior: "deny", Message: truncate(agentReason(d), MaxString), Interrupt: &f}
		}
	case Block:
		if d.Outcome == policy.Deny && c.blockable() {
			o.Decision, o.Reason = "block", truncate(agentReason(d), MaxString)
		}
		if c.Event.Context {
			spec.AdditionalContext = ctx
		}
		if c.Event.Name == "PostToolUse" {
			if out, ok := d.Fields["updated_tool_output"]; ok && out != nil {
				if strings.HasPrefix(c.ToolName(), "mcp__") {
					spec.UpdatedMCPToolOutput = out
				} else {
					spec.UpdatedToolOutput = out
				}
			}
		}
	case Halt:
		if d.Outcome == policy.Deny {
			f := false
			o.Continue, o.StopReason = &f, truncate(agentReason(d), MaxString)
		}
	case Elicit:
		switch d.Outcome {
		case policy.Allow:
			spec.Action = "accept"
			spec.Content, _ = d.Fields["content"].(map[string]any)
		case policy.Deny:
			spec.Action = "decline"
		}
	case Observe:
		if c.Event.Context {
			spec.AdditionalContext = ctx
		}
	}
	if !spec.empty() {
		o.HookSpecificOutput = spec
	}
	return encode(o)
}

// blockable reports whether a block on this call takes effect: a
// ConfigChange of managed policy settings cannot be blocked, and a Stop
// hook that is already keeping Claude going (stop_hook_active) is not
// blocked again, so a policy cannot trap the agent in a loop.
func (c Call) blockable() bool {
	switch c.Event.Name {
	case "ConfigChange":
		return c.str("source") != "policy_settings"
	case "Stop", "SubagentStop":
		active, _ := c.Hook["stop_hook_active"].(bool)
		return !active
	}
	return true
}

func (s *specific) empty() bool {
	return s.PermissionDecision == "" && s.Decision == nil && s.Action == "" && s.UpdatedInput == nil &&
		s.UpdatedToolOutput == nil && s.UpdatedMCPToolOutput == nil && s.AdditionalContext == ""
}

// encode marshals o, or returns nil when it says nothing.
func encode(o output) []byte {
	if o == (output{}) {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return nil // every field is JSON-encodable: values come from decoded JSON
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// userReason is the reason meant for the user; agentReason the one meant
// for Claude. Each falls back to the other.
func userReason(d policy.Decision) string {
	if d.Reason != "" {
		return d.Reason
	}
	return d.AgentReason
}

func agentReason(d policy.Decision) string {
	if d.AgentReason != "" {
		return d.AgentReason
	}
	if d.Reason != "" {
		return d.Reason
	}
	return "denied by policy " + strings.Join(d.RuleIDs, ", ")
}

// FailClosed is the answer when no decision could be made: a deny or a
// block for events that gate an action, nothing for the others. reason
// names what failed.
func FailClosed(c Call, reason string) []byte {
	if !c.Known || !c.Event.Gating {
		return nil
	}
	return Answer(c, policy.Decision{Outcome: policy.Deny, Reason: reason})
}
