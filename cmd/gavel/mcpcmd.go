package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/mcpserver"
	"github.com/gavel-dev/gavel/policy"
)

// mcpConfig is every flag of `gavel mcp`.
type mcpConfig struct {
	config          string
	bundle          string
	logLevel        string
	logFormat       string
	decisionTimeout time.Duration
	recent          int
	principal       string
}

func newMCPCmd() *cobra.Command {
	cfg := &mcpConfig{}
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the governance MCP server over stdio, with its own policy engine",
		Long: `Serve gavel's MCP tools (check_action, get_policy, explain_decision,
validate_code) over stdio, for an MCP client that starts gavel as a
subprocess:

  claude mcp add gavel -- gavel mcp

The policy engine runs in this process, loaded from --bundle (default: the
built-in bundle); it keeps the last --recent decisions in memory for
explain_decision. stdout carries only JSON-RPC; logs go to stderr. A running
gavel serve offers the same tools over HTTP at /mcp.`,
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMCP(cmd.Context(), cfg, &mcp.StdioTransport{})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.config, "config", "", "YAML file with flag values (keys are flag names)")
	f.StringVar(&cfg.bundle, "bundle", "", "policy bundle: a directory or an OPA bundle .tar.gz (default: the built-in bundle)")
	f.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error (logs go to stderr)")
	f.StringVar(&cfg.logFormat, "log-format", "json", "log format: json or text")
	f.DurationVar(&cfg.decisionTimeout, "decision-timeout", 100*time.Millisecond, "bound on one policy evaluation")
	f.IntVar(&cfg.recent, "recent", 1000, "decisions kept in memory for explain_decision")
	f.StringVar(&cfg.principal, "principal", agentPrincipal.Name, "who the policy sees as asking (principal.sub; role agent)")
	return cmd
}

// runMCP loads the bundle into an in-process engine and serves the MCP
// server on t until the client disconnects or ctx ends.
func runMCP(ctx context.Context, cfg *mcpConfig, t mcp.Transport) error {
	log, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	if cfg.recent < 1 {
		return fmt.Errorf("--recent %d: want at least 1", cfg.recent)
	}
	svc := policy.NewService(policy.Options{EvalTimeout: cfg.decisionTimeout, Logger: log})
	b, err := loadBundle(cfg.bundle)
	if err != nil {
		return err
	}
	if _, err := svc.Activate(ctx, b); err != nil {
		return err
	}
	recent := policy.NewRecent(cfg.recent)
	s := mcpserver.New(mcpserver.Options{
		Decider:    svc,
		Recent:     recent,
		RecentSize: cfg.recent,
		Audit:      recent,
		Principal:  auth.Principal{Name: cfg.principal, Roles: []string{auth.RoleAgent}},
		Logger:     log,
		Version:    buildVersion(),
	})
	log.Info("gavel mcp serving on stdio", "version", buildVersion(), "revision", svc.Revision())
	err = s.Run(ctx, t)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // SIGINT or SIGTERM
	}
	return err
}
