package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/cmd/internal/discovery"
	"github.com/gavel-dev/gavel/envoy"
)

func newEnvoyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "envoy",
		Short: "Envoy configuration for gavel's sidecars",
	}
	cmd.AddCommand(newEnvoyBootstrapCmd())
	return cmd
}

func newEnvoyBootstrapCmd() *cobra.Command {
	var nodeID, nodeCluster, xdsAddr, authzAddr, adminAddr, dataDir, out string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print a sidecar Envoy bootstrap: node, ADS to gavel, the ext_authz cluster, admin",
		Long: `Print the bootstrap of an Envoy beside a service: its node id and cluster, ADS
to gavel's control plane over HTTP/2, the static ext_authz cluster (so checks
reach gavel before the first xDS answer), and the admin listener on loopback.
Addresses default to those in the discovery file of a running gavel, then to
gavel's defaults. The output is validated against Envoy's protos.`,
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if info, err := discovery.Read(discovery.Path(dataDir)); err == nil {
				if !cmd.Flags().Changed("authz-addr") && info.AuthzAddr != "" {
					authzAddr = info.AuthzAddr
				}
				if !cmd.Flags().Changed("xds-addr") && info.XDSAddr != "" {
					xdsAddr = info.XDSAddr
				}
			}
			host, port, err := net.SplitHostPort(authzAddr)
			if err != nil {
				return fmt.Errorf("--authz-addr %q: %w", authzAddr, err)
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil {
				return fmt.Errorf("--authz-addr %q: bad port", authzAddr)
			}
			if nodeCluster == "" {
				nodeCluster = nodeID
			}
			b, err := envoy.GenerateBootstrap(envoy.SidecarBootstrap{
				NodeID:      nodeID,
				NodeCluster: nodeCluster,
				XDSAddr:     xdsAddr,
				Authz:       envoy.AuthzConfig{Address: host, Port: uint32(p)},
				AdminAddr:   adminAddr,
			})
			if err != nil {
				return err
			}
			y, err := envoy.BootstrapYAML(b)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(y)
				return err
			}
			return os.WriteFile(out, y, 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodeID, "node-id", "", "the Envoy's node id (required): the control plane keys its configuration by it")
	f.StringVar(&nodeCluster, "node-cluster", "", "the Envoy's node cluster, usually the service name (default: the node id)")
	f.StringVar(&xdsAddr, "xds-addr", "127.0.0.1:18000", "gavel's xDS (ADS) address")
	f.StringVar(&authzAddr, "authz-addr", defaultAuthzAddr, "gavel's ext_authz address")
	f.StringVar(&adminAddr, "admin-addr", "127.0.0.1:9901", "Envoy's admin listener")
	f.StringVar(&dataDir, "data-dir", "./gavel-data", "where to find a running gavel's discovery file")
	f.StringVarP(&out, "output", "o", "-", "file to write (- for standard output)")
	_ = cmd.MarkFlagRequired("node-id")
	return cmd
}
