// Package hooks serves Claude Code hooks: POST /v1/hooks/claude-code takes
// the unmodified hook JSON of any event, asks the policy engine, and answers
// with exactly Claude Code's output schema for that event, or an empty body
// for "no opinion".
//
// The core is pure: [Decode] turns a body into a [Call], [Call.Input] builds
// the policy input, and [Answer] turns a decision into the body Claude Code
// reads. The handler adds authentication context, limits, audit and metrics.
//
// Failure is closed for events that can block: when no decision can be made
// (no bundle, a policy error, a timeout) gavel answers 200 with a deny or a
// block, so that an HTTP hook (which fails open on any non-2xx) and the
// gavel-hook forwarder (which fails closed on one) both stop the action.
// Observation events get an empty answer.
package hooks

// Kind is how an event can influence Claude Code.
type Kind uint8

// Kinds of events, by what a decision can do (the hooks reference, "Decision
// control").
const (
	// Observe: the event cannot block; only context or side effects.
	Observe Kind = iota
	// Permission: PreToolUse, with allow/deny/ask in hookSpecificOutput.
	Permission
	// Dialog: PermissionRequest, with decision.behavior allow/deny.
	Dialog
	// Block: top-level decision "block" + reason.
	Block
	// Halt: TeammateIdle, TaskCompleted; stopped with continue:false.
	Halt
	// Elicit: Elicitation(Result), with action accept/decline.
	Elicit
)

// Event describes one Claude Code hook event.
type Event struct {
	Name string
	Kind Kind
	// Context reports whether hookSpecificOutput.additionalContext is read.
	Context bool
	// Gating events fail closed: a failure to decide blocks the action.
	Gating bool
}

// Events are Claude Code's hook events (31 as of v2.1.239).
var Events = map[string]Event{}

func init() {
	for _, e := range []Event{
		{Name: "SessionStart", Kind: Observe, Context: true},
		{Name: "Setup", Kind: Observe, Context: true},
		{Name: "InstructionsLoaded", Kind: Observe},
		{Name: "UserPromptSubmit", Kind: Block, Context: true, Gating: true},
		{Name: "UserPromptExpansion", Kind: Block, Gating: true},
		{Name: "MessageDisplay", Kind: Observe},
		{Name: "PreToolUse", Kind: Permission, Context: true, Gating: true},
		{Name: "PermissionRequest", Kind: Dialog, Gating: true},
		{Name: "PermissionDenied", Kind: Observe},
		{Name: "PostToolUse", Kind: Block, Context: true},
		{Name: "PostToolUseFailure", Kind: Block, Context: true},
		{Name: "PostToolBatch", Kind: Block},
		{Name: "Notification", Kind: Observe},
		{Name: "SubagentStart", Kind: Observe, Context: true},
		{Name: "SubagentStop", Kind: Block},
		{Name: "TaskCreated", Kind: Block, Gating: true},
		{Name: "TaskCompleted", Kind: Halt},
		{Name: "Stop", Kind: Block},
		{Name: "StopFailure", Kind: Observe},
		{Name: "TeammateIdle", Kind: Halt},
		{Name: "ConfigChange", Kind: Block, Gating: true},
		{Name: "CwdChanged", Kind: Observe},
		{Name: "DirectoryAdded", Kind: Observe},
		{Name: "FileChanged", Kind: Observe},
		{Name: "WorktreeCreate", Kind: Observe},
		{Name: "WorktreeRemove", Kind: Observe},
		{Name: "PreCompact", Kind: Block, Gating: true},
		{Name: "PostCompact", Kind: Observe},
		{Name: "Elicitation", Kind: Elicit, Gating: true},
		{Name: "ElicitationResult", Kind: Elicit, Gating: true},
		{Name: "SessionEnd", Kind: Observe},
	} {
		Events[e.Name] = e
	}
}
