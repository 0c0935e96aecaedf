// Package api is gavel's HTTP application: health and readiness, the
// Prometheus endpoint, the API's OpenAPI description (openapi.yaml), the
// HTTP authorization endpoint, the port discovery REST API, and the routes
// the hooks, MCP, events and admin handlers mount on. Handlers return
// errors; one adapter maps them to status codes without leaking internals.
package api

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/xds/ports"
)

// Status is what /readyz reports.
type Status struct {
	Ready bool `json:"ready"`
	// Revision is the active policy bundle's revision ("" when none).
	Revision string `json:"revision,omitempty"`
	// Checks names each component's state ("ok", or what is wrong).
	Checks map[string]string `json:"checks,omitempty"`
}

// Options configure [New]. Nil handlers are not mounted.
type Options struct {
	// Ready reports readiness; nil means always ready.
	Ready func() Status
	// Metrics serves /metrics.
	Metrics http.Handler
	// Authz serves the HTTP authorization endpoints below /authz/.
	Authz http.Handler
	// XDSSnapshot, when set, serves a node's current xDS configuration as
	// JSON at GET /v1/xds/nodes/{node}/snapshot.
	XDSSnapshot func(node string) ([]byte, error)
	// Pprof mounts net/http/pprof at /debug/pprof/ (off by default: it
	// exposes internals and costs CPU when used).
	Pprof bool
	// Hooks serves the Claude Code hooks endpoint below /v1/hooks/
	// (authenticated by the handler).
	Hooks http.Handler
	// Validate serves the validation service at POST /v1/validate
	// (authenticated by the handler).
	Validate http.Handler
	// MCP serves the governance MCP server at /mcp (Streamable HTTP;
	// authenticated by the handler).
	MCP http.Handler
	// Events serves the live event stream at GET /v1/events (a WebSocket;
	// authenticated by the handler: role viewer).
	Events http.Handler
	// Ports serves the port discovery API below /v1/services.
	Ports ports.Registry
	// Bundles serves the bundle lifecycle below /v1/bundles.
	Bundles http.Handler
	// Decisions serves the audit trail below /v1/decisions.
	Decisions http.Handler
	// Auth, when set, guards every route by the role Routes gives it
	// (nil: routes are not authenticated here).
	Auth Checker
	// MetricsAuth asks for role viewer on /metrics.
	MetricsAuth bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// New builds the HTTP handler.
func New(opts Options) http.Handler {
	opts, mux := newMux(opts)
	return wrap(opts, mux)
}

// newMux registers every route of opts (with defaults filled in).
func newMux(opts Options) (Options, *http.ServeMux) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		reply.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", handle(opts.Logger, func(w http.ResponseWriter, _ *http.Request) error {
		st := Status{Ready: true}
		if opts.Ready != nil {
			st = opts.Ready()
		}
		code := http.StatusOK
		if !st.Ready {
			code = http.StatusServiceUnavailable
		}
		reply.JSON(w, code, st)
		return nil
	}))
	mux.Handle("GET /openapi.json", openapiHandler(opts.Logger))
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	if opts.Authz != nil {
		mux.Handle("/authz/", opts.Authz)
	}
	if opts.Hooks != nil {
		mux.Handle("/v1/hooks/", opts.Hooks)
	}
	if opts.Validate != nil {
		mux.Handle("/v1/validate", opts.Validate)
	}
	if opts.MCP != nil {
		mux.Handle("/mcp", opts.MCP)
	}
	if opts.Events != nil {
		mux.Handle("GET /v1/events", opts.Events)
	}
	if opts.Bundles != nil {
		mux.Handle("/v1/bundles", opts.Bundles)
		mux.Handle("/v1/bundles/", opts.Bundles)
	}
	if opts.Decisions != nil {
		mux.Handle("/v1/decisions", opts.Decisions)
		mux.Handle("/v1/decisions/", opts.Decisions)
	}
	if opts.Ports != nil {
		mountPorts(mux, opts.Logger, opts.Ports)
	}
	if opts.XDSSnapshot != nil {
		mux.Handle("GET /v1/xds/nodes/{node}/snapshot", handle(opts.Logger, func(w http.ResponseWriter, r *http.Request) error {
			b, err := opts.XDSSnapshot(r.PathValue("node"))
			if err != nil {
				return &Error{Code: http.StatusNotFound, Message: "no snapshot for node " + r.PathValue("node") + ": it has not connected", Err: err}
			}
			w.Header().Set("Content-Type", "application/json")
			_, err = w.Write(b)
			return err
		}))
	}
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return opts, mux
}

// wrap puts the mux behind authentication and routes the authorization
// endpoints around it.
func wrap(opts Options, mux *http.ServeMux) http.Handler {
	var h http.Handler = mux
	if opts.Auth != nil {
		h = protect(mux, opts.Auth, opts.MetricsAuth)
	}
	if opts.Authz == nil {
		return h
	}
	// The authorization endpoints see the original request's path exactly
	// as the proxy sent it: ServeMux would clean it ("//", "/../") and
	// redirect, so a policy would never see the path an attacker used.
	// They are open routes (see Routes).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/authz/") {
			opts.Authz.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Error is an error with the status code and the message a client may see.
type Error struct {
	Code    int
	Message string
	Err     error // logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// handle adapts a handler that returns an error: an *Error is answered with
// its code and message; anything else is logged and answered 500 with no
// detail.
func handle(log *slog.Logger, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			if e.Err != nil {
				log.Warn("request failed", "path", r.URL.Path, "code", e.Code, "err", e.Err)
			}
			reply.JSON(w, e.Code, map[string]string{"error": e.Message})
			return
		}
		log.Error("request failed", "path", r.URL.Path, "err", err)
		reply.JSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	})
}
