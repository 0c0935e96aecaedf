package mcpserver

import (
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// tools holds the tool handlers.
type tools struct{ opts Options }

// Tool names.
const (
	ToolCheckAction     = "check_action"
	ToolGetPolicy       = "get_policy"
	ToolExplainDecision = "explain_decision"
	ToolValidateCode    = "validate_code"
)

func readOnly(title string) *mcp.ToolAnnotations {
	f := false
	return &mcp.ToolAnnotations{Title: title, ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &f}
}

func (t *tools) register(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:  ToolCheckAction,
		Title: "Check an action against policy",
		Description: `Ask gavel whether a tool call you are about to make is allowed, before you make it. ` +
			`Call it before risky or unusual actions: shell commands that delete, force-push, deploy, change permissions ` +
			`or touch credentials; writes outside the project; network calls. Pass the exact tool name and arguments you ` +
			`intend to use. The answer (allow, deny, ask or no_opinion, with the reason and the rule ids) is the decision ` +
			`the PreToolUse hook would make for the same call. It is advisory: the hook still enforces, so a denied ` +
			`action stays denied; on deny, follow the reason or choose another way. ask means a human will be asked.`,
		Annotations:  readOnly("Check an action against policy"),
		OutputSchema: checkOutputSchema(),
	}, t.checkAction)
	mcp.AddTool(s, &mcp.Tool{
		Name:  ToolGetPolicy,
		Title: "List the policy's rules",
		Description: `List the governance rules that apply to your tool calls, so you can plan within them ` +
			`instead of being denied: each rule's id, a summary, its effect (deny, ask, allow...) and the hook events ` +
			`it applies to. Give topic (e.g. "git", "secret", "rm") to list only the rules whose id or summary mentions it.`,
		Annotations: readOnly("List the policy's rules"),
	}, t.getPolicy)
	mcp.AddTool(s, &mcp.Tool{
		Name:  ToolExplainDecision,
		Title: "Explain a decision",
		Description: `Explain a decision gavel made: give the decision id (from check_action, validate_code, or a ` +
			`denial's X-Gavel-Decision-Id) to get its outcome, reasons, the rule ids that matched, the policy version ` +
			`and when it was made. Use it when an action was denied and the reason alone does not say what to change.`,
		Annotations: readOnly("Explain a decision"),
	}, t.explainDecision)
	mcp.AddTool(s, &mcp.Tool{
		Name:  ToolValidateCode,
		Title: "Validate code",
		Description: `Check code against the workspace's validation rules (committed secrets, forbidden patterns, ` +
			`licence headers, size limits) before you write, commit or push it. Give whole files (path and content), ` +
			`a unified diff (only its added lines are checked), or both. ok is false when any finding is an error; ` +
			`fix every finding of severity error, then validate again.`,
		Annotations: readOnly("Validate code"),
	}, t.validateCode)
}

// checkOutputSchema is check_action's inferred output schema with the
// decision's values enumerated.
func checkOutputSchema() *jsonschema.Schema {
	s, err := jsonschema.For[CheckOutput](nil)
	if err != nil {
		panic("mcpserver: check_action output schema: " + err.Error()) // a static type: fails in every test or never
	}
	s.Properties["decision"].Enum = []any{"allow", "deny", "ask", "no_opinion"}
	return s
}
