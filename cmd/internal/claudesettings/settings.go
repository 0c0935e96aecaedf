// Package claudesettings edits Claude Code settings files
// (.claude/settings.json and friends) to install and remove gavel's hooks,
// and writes the managed settings an organisation deploys.
//
// The functions work on JSON bytes and do no I/O. A settings file is read
// into an order-keeping tree, so every key stays where it was, at every
// level, and scalars keep their text; the result is written back indented
// by two spaces, as Claude Code writes it. Only gavel's own hook handlers
// are touched: a handler is gavel's when it is a command hook whose
// command's base name is gavel-hook.
package claudesettings

import (
	"fmt"
	"strconv"
	"strings"
)

// Hook is one command hook gavel installs.
type Hook struct {
	Event   string
	Matcher string // "" for an event without a matcher group filter
	Command string // absolute path of gavel-hook
	Args    []string
	Timeout int // seconds
}

// handler is the hook's handler object in settings.json.
func (h Hook) handler() *node {
	return object("type", "command", "command", h.Command, "args", stringArray(h.Args), "timeout", h.Timeout)
}

// group is a matcher group holding only h.
func (h Hook) group() *node {
	if h.Matcher == "" {
		return object("hooks", array(h.handler()))
	}
	return object("matcher", h.Matcher, "hooks", array(h.handler()))
}

// GatingEvents are the events whose action waits for gavel's decision.
var GatingEvents = []string{"PreToolUse", "PermissionRequest", "UserPromptSubmit", "ConfigChange", "PreCompact"}

// ObservationEvents are the events gavel records.
var ObservationEvents = []string{"PostToolUse", "Stop", "SessionStart", "SessionEnd"}

// toolEvents filter on the tool name; gavel matches every tool.
var toolEvents = map[string]bool{"PreToolUse": true, "PermissionRequest": true, "PostToolUse": true}

// GavelHooks is the set of hooks `gavel hook install` writes: every gating
// event and the observation events, each running command with flags and
// then the event's name.
func GavelHooks(command string, flags []string, timeout int) []Hook {
	var hooks []Hook
	for _, ev := range append(append([]string(nil), GatingEvents...), ObservationEvents...) {
		h := Hook{Event: ev, Command: command, Args: append(append([]string(nil), flags...), ev), Timeout: timeout}
		if toolEvents[ev] {
			h.Matcher = "*"
		}
		hooks = append(hooks, h)
	}
	return hooks
}

// IsGavelCommand reports whether a hook command runs gavel-hook: its first
// word's base name is gavel-hook (or gavel-hook.exe).
func IsGavelCommand(command string) bool {
	command = strings.TrimSpace(command)
	var first string
	if q := command[:min(1, len(command))]; q == `"` || q == "'" {
		first, _, _ = strings.Cut(command[1:], q)
	} else if fields := strings.Fields(command); len(fields) > 0 {
		first = fields[0]
	}
	if i := strings.LastIndexAny(first, `/\`); i >= 0 {
		first = first[i+1:]
	}
	return first == "gavel-hook" || first == "gavel-hook.exe"
}

// isGavelHandler reports whether a handler object is one of gavel's.
func isGavelHandler(n *node) bool {
	if n == nil || n.kind != '{' {
		return false
	}
	if t := n.get("type"); t != nil {
		if s, _ := t.str(); s != "command" {
			return false
		}
	}
	cmd, ok := n.get("command").str()
	return ok && IsGavelCommand(cmd)
}

// matchesAll reports whether a matcher matches every name.
func matchesAll(m string) bool { return m == "" || m == "*" }

func groupMatcher(g *node) string {
	s, _ := g.get("matcher").str()
	return s
}

// sameMatcher reports whether group g filters like matcher m.
func sameMatcher(g *node, m string) bool {
	gm := groupMatcher(g)
	return gm == m || matchesAll(gm) && matchesAll(m)
}

// hooksOf returns the handler array of a matcher group, or nil.
func hooksOf(g *node) *node {
	if g == nil || g.kind != '{' {
		return nil
	}
	if hs := g.get("hooks"); hs != nil && hs.kind == '[' {
		return hs
	}
	return nil
}

// stripGavel removes gavel's handlers from an event's matcher groups,
// except the handler at keep (group, index; -1 for none), and drops the
// groups that left empty. It inserts before (when not nil) where the
// first removed handler's group was. It reports whether it changed
// anything.
func stripGavel(groups *node, keepGroup, keepIndex int, before *node) bool {
	changed := false
	inserted := before == nil
	var out []*node
	for gi, g := range groups.vals {
		hs := hooksOf(g)
		if hs == nil {
			out = append(out, g)
			continue
		}
		var kept []*node
		removed := false
		for hi, h := range hs.vals {
			if isGavelHandler(h) && !(gi == keepGroup && hi == keepIndex) {
				removed = true
				continue
			}
			kept = append(kept, h)
		}
		if removed && !inserted {
			out = append(out, before)
			inserted = true
		}
		if !removed {
			out = append(out, g)
			continue
		}
		changed = true
		hs.vals = kept
		if len(kept) > 0 {
			out = append(out, g)
		}
	}
	if !inserted {
		out = append(out, before)
	}
	groups.vals = out
	return changed
}

// Install merges hooks into the settings document and returns the new
// document and whether it differs from the old one (ignoring layout).
// gavel's handlers already there are replaced in place; gavel's handlers on
// events not in hooks are removed; everything else is kept.
func Install(settings []byte, hooks []Hook) ([]byte, bool, error) {
	root, err := parseDoc(settings)
	if err != nil {
		return nil, false, err
	}
	old := root.encode()
	hooksObj := root.get("hooks")
	if hooksObj == nil {
		hooksObj = &node{kind: '{'}
		root.set("hooks", hooksObj)
	}
	if hooksObj.kind != '{' {
		return nil, false, fmt.Errorf(`"hooks" is not an object`)
	}
	want := map[string]bool{}
	for _, h := range hooks {
		want[h.Event] = true
	}
	for i, ev := range hooksObj.keys {
		if want[ev] {
			continue
		}
		if groups := hooksObj.vals[i]; groups.kind == '[' && stripGavel(groups, -1, -1, nil) && len(groups.vals) == 0 {
			hooksObj.vals[i] = nil // dropped below
		}
	}
	dropNil(hooksObj)
	for _, h := range hooks {
		if err := installOne(hooksObj, h); err != nil {
			return nil, false, err
		}
	}
	out := root.encode()
	return out, string(out) != string(old), nil
}

// dropNil removes the members of an object marked for removal.
func dropNil(obj *node) {
	keys, vals := obj.keys[:0], obj.vals[:0]
	for i, v := range obj.vals {
		if v != nil {
			keys = append(keys, obj.keys[i])
			vals = append(vals, v)
		}
	}
	obj.keys, obj.vals = keys, vals
}

func installOne(hooksObj *node, h Hook) error {
	groups := hooksObj.get(h.Event)
	if groups == nil {
		hooksObj.set(h.Event, array(h.group()))
		return nil
	}
	if groups.kind != '[' {
		return fmt.Errorf("hooks.%s is not an array", h.Event)
	}
	// The first gavel handler of the event is replaced in place when its
	// group filters as gavel wants; any other gavel handler goes.
	for gi, g := range groups.vals {
		hs := hooksOf(g)
		if hs == nil {
			continue
		}
		for hi, hd := range hs.vals {
			if !isGavelHandler(hd) {
				continue
			}
			if sameMatcher(g, h.Matcher) {
				hs.vals[hi] = h.handler()
				stripGavel(groups, gi, hi, nil)
			} else {
				stripGavel(groups, -1, -1, h.group())
			}
			return nil
		}
	}
	groups.vals = append(groups.vals, h.group())
	return nil
}

// Uninstall removes gavel's handlers from the settings document, and the
// matcher groups, events and "hooks" object that leaves empty. It returns
// the new document and whether anything was removed.
func Uninstall(settings []byte) ([]byte, bool, error) {
	root, err := parseDoc(settings)
	if err != nil {
		return nil, false, err
	}
	hooksObj := root.get("hooks")
	if hooksObj == nil || hooksObj.kind != '{' {
		return root.encode(), false, nil
	}
	changed := false
	for i := range hooksObj.vals {
		groups := hooksObj.vals[i]
		if groups.kind != '[' || !stripGavel(groups, -1, -1, nil) {
			continue
		}
		changed = true
		if len(groups.vals) == 0 {
			hooksObj.vals[i] = nil
		}
	}
	dropNil(hooksObj)
	if changed && len(hooksObj.vals) == 0 {
		root.del("hooks")
	}
	return root.encode(), changed, nil
}

// Installed lists the events that have a gavel handler in a settings
// document.
func Installed(settings []byte) ([]string, error) {
	root, err := parseDoc(settings)
	if err != nil {
		return nil, err
	}
	var events []string
	hooksObj := root.get("hooks")
	if hooksObj == nil || hooksObj.kind != '{' {
		return nil, nil
	}
	for i, ev := range hooksObj.keys {
		for _, g := range hooksObj.vals[i].vals {
			found := false
			if hs := hooksOf(g); hs != nil {
				for _, h := range hs.vals {
					found = found || isGavelHandler(h)
				}
			}
			if found {
				events = append(events, ev)
				break
			}
		}
	}
	return events, nil
}

// ManagedOptions shape the managed settings for an organisation.
type ManagedOptions struct {
	// URL is gavel's base URL as Claude Code's machines reach it.
	URL string
	// HookCommand is where gavel-hook is installed on those machines.
	HookCommand string
	// Timeout is the hook timeout in seconds.
	Timeout int
	// ForwarderFlags go before the event name in the forwarder's args.
	ForwarderFlags []string
}

// Managed returns a managed-settings.json that runs only managed hooks:
// the gating events (and SessionStart, which has no HTTP form) through the
// gavel-hook command forwarder, which fails closed; PostToolUse and
// SessionEnd as HTTP hooks, which fail open, straight to gavel's hooks
// endpoint with the token from GAVEL_TOKEN. The output is deterministic.
func Managed(o ManagedOptions) []byte {
	base := strings.TrimRight(o.URL, "/")
	endpoint := base + "/v1/hooks/claude-code"
	hooks := &node{kind: '{'}
	command := func(ev, matcher string) {
		h := Hook{Event: ev, Matcher: matcher, Command: o.HookCommand, Args: append(append([]string(nil), o.ForwarderFlags...), ev), Timeout: o.Timeout}
		hooks.set(ev, array(h.group()))
	}
	command("SessionStart", "")
	for _, ev := range GatingEvents {
		m := ""
		if toolEvents[ev] {
			m = "*"
		}
		command(ev, m)
	}
	httpHook := func(ev, matcher string) {
		handler := object("type", "http", "url", endpoint,
			"headers", object("Authorization", "Bearer $GAVEL_TOKEN", "X-Gavel-Agent", "claude-code", "X-Gavel-Transport", "http-hook"),
			"allowedEnvVars", stringArray([]string{"GAVEL_TOKEN"}),
			"timeout", o.Timeout)
		g := object("hooks", array(handler))
		if matcher != "" {
			g = object("matcher", matcher, "hooks", array(handler))
		}
		hooks.set(ev, array(g))
	}
	httpHook("PostToolUse", "*")
	httpHook("SessionEnd", "")
	root := object(
		"allowManagedHooksOnly", true,
		"allowedHttpHookUrls", stringArray([]string{base + "/*"}),
		"httpHookAllowedEnvVars", stringArray([]string{"GAVEL_TOKEN"}),
		"hooks", hooks,
	)
	return root.encode()
}

// ForwarderTimeout is gavel-hook's internal deadline for a hook timeout of
// t seconds: min(2s, t-1s), so that gavel-hook decides before Claude Code
// gives up on it (a timed-out hook fails open). It returns "" for the
// default of 2s.
func ForwarderTimeout(t int) (string, error) {
	if t < 2 {
		return "", fmt.Errorf("hook timeout %ds: want at least 2s, gavel-hook needs a second to decide before Claude Code gives up", t)
	}
	if t-1 >= 2 {
		return "", nil
	}
	return strconv.Itoa(t-1) + "s", nil
}
