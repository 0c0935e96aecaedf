package hooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/policy"
)

// Call is one decoded hook call.
type Call struct {
	// Event is the event's description; Known is false for an event gavel
	// does not know, which gets no opinion.
	Event Event
	Known bool
	// Hook is the hook JSON, unmodified (numbers as json.Number).
	Hook map[string]any
	// Digest is the hex sha256 of the body.
	Digest string
}

// ErrBadHook is wrapped by every error [Decode] returns.
var ErrBadHook = errors.New("bad hook request")

// Decode reads a hook body: one JSON object. The event is the body's
// hook_event_name, else pathEvent (the /v1/hooks/claude-code/{Event}
// alias). Unknown fields are kept for the policy and otherwise ignored.
func Decode(body []byte, pathEvent string) (Call, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Call{}, fmt.Errorf("%w: body is not JSON: %s", ErrBadHook, jsonError(body, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Call{}, fmt.Errorf("%w: body holds more than one JSON value", ErrBadHook)
	}
	hook, ok := v.(map[string]any)
	if !ok {
		return Call{}, fmt.Errorf("%w: body is a JSON %s, want an object", ErrBadHook, jsonKind(v))
	}
	name := pathEvent
	if n, present := hook["hook_event_name"]; present {
		s, ok := n.(string)
		if !ok {
			return Call{}, fmt.Errorf("%w: hook_event_name is a JSON %s, want a string", ErrBadHook, jsonKind(n))
		}
		name = s
	}
	if name == "" {
		return Call{}, fmt.Errorf("%w: hook_event_name is missing (or name the event in the path: /v1/hooks/claude-code/PreToolUse)", ErrBadHook)
	}
	sum := sha256.Sum256(body)
	c := Call{Hook: hook, Digest: hex.EncodeToString(sum[:])}
	c.Event, c.Known = Events[name]
	if !c.Known {
		c.Event = Event{Name: name}
	}
	return c, nil
}

func jsonError(body []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(body[:min(int(se.Offset), len(body))], []byte("\n"))
		return fmt.Sprintf("%v (line %d, byte %d)", se, line, se.Offset)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of body"
	}
	return err.Error()
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// str returns the hook's string field key, or "".
func (c Call) str(key string) string {
	s, _ := c.Hook[key].(string)
	return s
}

// ToolName is the tool a tool event is about, or "".
func (c Call) ToolName() string { return c.str("tool_name") }

// Meta is what the transport adds to a call.
type Meta struct {
	Principal auth.Principal
	// ProjectDir is the project root the forwarder reports
	// (CLAUDE_PROJECT_DIR); the hook's cwd when empty.
	ProjectDir string
	// Transport is "command-forwarder" or "http-hook" (X-Gavel-Transport).
	Transport string
}

// Input builds the policy input:
//
//	{"agent": "claude-code", "event": ..., "hook": <the hook JSON>,
//	 "principal": {"sub": ..., "roles": [...]},
//	 "session": {"id", "prompt_id", "agent_id", "agent_type", "cwd",
//	             "project_dir", "permission_mode", "transport"}}
func (c Call) Input(m Meta) (policy.Input, error) {
	projectDir := m.ProjectDir
	if projectDir == "" {
		projectDir = c.str("cwd")
	}
	roles := make([]any, len(m.Principal.Roles))
	for i, r := range m.Principal.Roles {
		roles[i] = r
	}
	session := map[string]any{
		"id":          c.str("session_id"),
		"cwd":         c.str("cwd"),
		"project_dir": projectDir,
		"transport":   m.Transport,
	}
	for _, k := range []string{"prompt_id", "agent_id", "agent_type", "permission_mode"} {
		if s := c.str(k); s != "" {
			session[k] = s
		}
	}
	return policy.NewInput(map[string]any{
		"agent":     "claude-code",
		"event":     c.Event.Name,
		"hook":      c.Hook,
		"principal": map[string]any{"sub": m.Principal.Name, "roles": roles},
		"session":   session,
	})
}

// CorrelationID joins the records of one action: the session, then the
// tool use (PreToolUse, PostToolUse) or the prompt, then the event.
// PermissionRequest carries no tool_use_id, so the tool and the digest of
// its input stand in for it.
func (c Call) CorrelationID() string {
	parts := []string{c.str("session_id")}
	switch {
	case c.str("tool_use_id") != "":
		parts = append(parts, c.str("tool_use_id"))
	case c.Event.Name == "PermissionRequest":
		b, _ := json.Marshal(c.Hook["tool_input"]) // maps marshal with sorted keys
		sum := sha256.Sum256(b)
		parts = append(parts, c.ToolName()+":"+hex.EncodeToString(sum[:8]))
	case c.str("prompt_id") != "":
		parts = append(parts, c.str("prompt_id"))
	}
	return strings.Join(append(parts, c.Event.Name), "/")
}

// Summary is the action and resource an audit record names: the event and
// tool, and what the tool acts on (a command, a path, a URL).
func (c Call) Summary() (action, resource string) {
	action = c.Event.Name
	if t := c.ToolName(); t != "" {
		action += " " + t
	}
	in, _ := c.Hook["tool_input"].(map[string]any)
	for _, k := range []string{"command", "file_path", "notebook_path", "url", "path", "pattern", "query"} {
		if s, ok := in[k].(string); ok && s != "" {
			return action, truncate(s, 256)
		}
	}
	switch c.Event.Name {
	case "ConfigChange", "InstructionsLoaded", "FileChanged":
		return action, c.str("file_path")
	case "SessionStart", "SessionEnd":
		return action, c.str("source") + c.str("reason")
	}
	return action, ""
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// NewCall is a call for event with the given hook fields, for callers that
// ask on an agent's behalf rather than relay a hook (the MCP server's
// check_action asks what a PreToolUse would get).
func NewCall(event string, hook map[string]any) Call {
	if hook == nil {
		hook = map[string]any{}
	}
	hook["hook_event_name"] = event
	b, _ := json.Marshal(hook)
	sum := sha256.Sum256(b)
	c := Call{Hook: hook, Digest: hex.EncodeToString(sum[:])}
	c.Event, c.Known = Events[event]
	if !c.Known {
		c.Event = Event{Name: event}
	}
	return c
}
