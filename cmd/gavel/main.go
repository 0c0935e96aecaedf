// Command gavel is the governance sidecar: an Envoy ext_authz server with a
// cached OPA engine, and the CLI that SREs drive it with.
//
//	gavel serve                 everything in one process (embedded default)
//	gavel authz                 only the ext_authz server, beside an Envoy
//	gavel controlplane          only xDS, port discovery and their HTTP API
//	gavel policy test DIR       run a bundle's Rego tests
//	gavel policy eval ...       evaluate one input and explain the decision
//	gavel policy build DIR      check a bundle and write it as a tarball
//	gavel ports register SVC    ask the running gavel for a port (port discovery)
//	gavel envoy bootstrap       print a sidecar Envoy bootstrap
//	gavel mcp                   the governance MCP server over stdio
//	gavel keys create/list/revoke  API keys for the HTTP API
//	gavel migrate               apply pending database migrations
//	gavel version
//
// Every flag can also be set as GAVEL_<FLAG> (GAVEL_AUTHZ_ADDR) or in a
// YAML config file given with --config; flags win over the environment,
// which wins over the file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise
// it comes from the module's build info.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit code for failures already reported (failed
// tests print their own report).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// defaultGCPercent is gavel's GOGC when the environment sets none. Its live
// heap is a few MiB and every decision allocates, so at Go's default of 100
// the collector would run about a hundred times a second under load; 400
// cuts that fourfold for some tens of MiB more, and lifts max rps and the
// p99 (docs/benchmarks.md).
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "gavel:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gavel",
		Short:         "Inline governance for Envoy traffic and coding agents, decided by OPA",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newAuthzCmd(), newPolicyCmd(), newEnvoyCmd(), newControlPlaneCmd(), newPortsCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print gavel's version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "gavel", buildVersion())
		},
	})
	root.AddCommand(newHookCmd())
	root.AddCommand(newMCPCmd())
	root.AddCommand(newMigrateCmd())
	root.AddCommand(newKeysCmd())
	return root
}
