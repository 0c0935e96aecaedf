package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/gavel-dev/gavel/store"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/api/mcpserver"
	"github.com/gavel-dev/gavel/api/validate"
	"github.com/gavel-dev/gavel/cmd/internal/telemetry"
	"github.com/gavel-dev/gavel/policy"
)

// hookTokenFile holds the bearer token local agents (gavel-hook, MCP
// clients) present; it is generated at first start.
const hookTokenFile = "hook-token"

// recentDecisions is how many decisions are kept in memory to be explained.
const recentDecisions = 10000

// agentPrincipal is who a request with the hook token is.
var agentPrincipal = auth.Principal{Name: "local-agent", Roles: []string{auth.RoleAgent}}

// loadOrCreateToken returns the token stored at path, creating it (mode
// 0600) when the file does not exist. A file that is readable by others is
// refused: the token admits callers.
func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("token %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		tok := string(bytes.TrimSpace(b))
		if tok == "" {
			return "", fmt.Errorf("token %s is empty: delete it and gavel makes a new one", path)
		}
		return tok, nil
	case errors.Is(err, fs.ErrNotExist):
		tok := auth.NewToken()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("create token: %w", err)
		}
		if _, err := f.WriteString(tok + "\n"); err != nil {
			f.Close()
			return "", fmt.Errorf("write token: %w", err)
		}
		return tok, f.Close()
	default:
		return "", fmt.Errorf("read token: %w", err)
	}
}

// agentAPI is the HTTP surface agents use: hooks (and the MCP server and
// validation service, which share the token and the audit sink).
type agentAPI struct {
	token    string
	tokens   *auth.Tokens
	recent   *policy.Recent
	hooks    http.Handler
	validate *validate.Service
	// validateHTTP serves POST /v1/validate.
	validateHTTP http.Handler
	// mcp serves the governance MCP server at /mcp.
	mcp http.Handler
}

// newAgentAPI builds the agent surface; its decisions are recorded in
// recent and handed to decisions (nil: nowhere else).
func newAgentAPI(dataDir string, svc *policy.Service, decisions policy.Sink, trail store.Audit, reg prometheus.Registerer, log *slog.Logger, tracing telemetry.Tracing) (*agentAPI, error) {
	tok, err := loadOrCreateToken(filepath.Join(dataDir, hookTokenFile))
	if err != nil {
		return nil, err
	}
	a := &agentAPI{
		token:  tok,
		tokens: auth.NewTokens(map[string]auth.Principal{tok: agentPrincipal}),
		recent: policy.NewRecent(recentDecisions),
	}
	var audit policy.Sink = a.recent
	if decisions != nil {
		audit = policy.Sinks{a.recent, decisions}
	}
	a.hooks = a.tokens.Require(auth.RoleAgent, hooks.Handler(hooks.Options{
		Decider: svc,
		Audit:   audit,
		Metrics: hooks.NewMetrics(reg),
		Logger:  log,

		TracerProvider: tracing.Provider,
		Propagator:     tracing.Propagator,
	}))
	a.validate = &validate.Service{Querier: svc, Audit: audit}
	a.validateHTTP = a.tokens.Require(auth.RoleAgent, validate.Handler(a.validate, log))
	a.mcp = a.tokens.Require(auth.RoleAgent, mcpserver.Handler(mcpserver.Options{
		Decider:    svc,
		Validate:   a.validate,
		Recent:     recentOrTrail{recent: a.recent, trail: trail},
		RecentSize: recentDecisions,
		Audit:      audit,
		Logger:     log,
		Version:    buildVersion(),
	}))
	return a, nil
}

// recentOrTrail finds a decision among the latest in memory, else in the
// audit trail (older decisions, or ones made on another replica).
type recentOrTrail struct {
	recent *policy.Recent
	trail  store.Audit
}

func (r recentOrTrail) Get(id string) (policy.Record, bool) {
	if rec, ok := r.recent.Get(id); ok {
		return rec, true
	}
	if r.trail == nil {
		return policy.Record{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec, err := r.trail.Decision(ctx, id)
	return rec, err == nil
}
