// Package mcpserver is gavel's governance MCP server: tools an agent calls
// to ask gavel before it acts (check_action), to plan within policy
// (get_policy), to understand a decision (explain_decision) and to check
// code it wrote (validate_code). Every tool is read-only and advisory: the
// agent's hooks still enforce.
//
// [New] builds the server on the official MCP Go SDK; [Handler] serves it
// over Streamable HTTP in stateless mode, so clients of the 2025-06-18,
// 2025-11-25 and 2026-07-28 revisions all connect; `gavel mcp` serves the
// same server over stdio.
package mcpserver

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/api/validate"
	"github.com/gavel-dev/gavel/policy"
)

// RulesEntryPoint is the bundle's list of agent rules: an array of
// {id, summary, effect, events} that get_policy returns.
const RulesEntryPoint = "gavel/agent/rules"

// Decider answers decisions and data queries (a *policy.Service).
type Decider interface {
	Decide(ctx context.Context, path string, in policy.Input) (policy.Decision, error)
	Query(ctx context.Context, path string, in policy.Input) (any, error)
	Revision() string
}

// Recent finds a recent decision's audit record by id (a *policy.Recent).
type Recent interface {
	Get(id string) (policy.Record, bool)
}

// Options configure [New] and [Handler]. Decider is required.
type Options struct {
	Decider Decider
	// Validate serves validate_code; nil builds one on Decider that audits
	// to Audit.
	Validate *validate.Service
	// Recent serves explain_decision; nil means no decision is held.
	Recent Recent
	// RecentSize is how many decisions Recent keeps, for the message an
	// agent gets when a decision is no longer held (0: unknown).
	RecentSize int
	// Audit receives a record of every check_action decision (nil: none).
	// It should feed Recent, so that a check can be explained.
	Audit policy.Sink
	// EntryPoint is the decision check_action asks; it defaults to the
	// hooks' (hooks.DefaultEntryPoint), so the answer is what a PreToolUse
	// hook would get.
	EntryPoint string
	// RulesEntryPoint defaults to [RulesEntryPoint].
	RulesEntryPoint string
	// Principal is who asks when the transport names no one (stdio); over
	// HTTP the authenticator's principal (auth.FromContext) is used.
	Principal auth.Principal
	// DisableLocalhostProtection lets [Handler] accept requests that arrive
	// on a loopback address with a non-loopback Host header, as they do
	// from a same-host Envoy that keeps the client's Host. Off by default:
	// the check defeats DNS rebinding.
	DisableLocalhostProtection bool
	// MaxBody bounds a request body over HTTP (default 8 MiB, enough for a
	// validate_code call at the validation service's own limit).
	MaxBody int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Version is the server version MCP clients see.
	Version string
}

func (o Options) withDefaults() Options {
	if o.Decider == nil {
		panic("mcpserver: Options.Decider is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.EntryPoint == "" {
		o.EntryPoint = hooks.DefaultEntryPoint
	}
	if o.RulesEntryPoint == "" {
		o.RulesEntryPoint = RulesEntryPoint
	}
	if o.Validate == nil {
		o.Validate = &validate.Service{Querier: o.Decider, Audit: o.Audit}
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 8<<20 + 64<<10
	}
	return o
}

// instructions tell a client what the server is for.
const instructions = `gavel is the governance policy for this workspace. Call check_action before a risky or unusual tool call (shell commands that delete, push, deploy or touch credentials; writes outside the project) to learn whether policy allows, denies or will ask for it, and why; call get_policy to plan within the rules; call validate_code on code you wrote before you commit it; call explain_decision with a decision id to learn why something was denied. The answers are advisory: gavel's hooks still enforce every tool call.`

// New builds the MCP server with the four governance tools.
func New(opts Options) *mcp.Server {
	opts = opts.withDefaults()
	s := mcp.NewServer(&mcp.Implementation{Name: "gavel", Title: "gavel governance", Version: opts.Version},
		&mcp.ServerOptions{Instructions: instructions, Logger: sdkLogger(opts.Logger)})
	t := &tools{opts: opts}
	t.register(s)
	s.AddReceivingMiddleware(logging(opts.Logger))
	return s
}

// Handler serves the server over Streamable HTTP, stateless with JSON
// responses (POST only; GET and DELETE get 405). It expects an
// authenticator in front of it: the principal comes from the request
// context. Browser cross-origin POSTs are refused (403).
func Handler(opts Options) http.Handler {
	opts = opts.withDefaults()
	s := New(opts)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{
		Stateless:                  true,
		JSONResponse:               true,
		DisableLocalhostProtection: opts.DisableLocalhostProtection,
		MaxRequestBodyBytes:        opts.MaxBody,
		Logger:                     sdkLogger(opts.Logger),
	})
	return http.NewCrossOriginProtection().Handler(h)
}

func sdkLogger(log *slog.Logger) *slog.Logger {
	return slog.New(quieter{log.Handler()}).With("component", "mcp-sdk")
}

// principal is who is asking: the authenticated caller, else the
// configured principal.
func (t *tools) principal(ctx context.Context) auth.Principal {
	if p, ok := auth.FromContext(ctx); ok {
		return p
	}
	return t.opts.Principal
}
