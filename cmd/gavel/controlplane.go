package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds"
	"github.com/gavel-dev/gavel/xds/ports"
)

const defaultXDSAddr = "127.0.0.1:18000"

// controlPlane is the xDS part of gavel serve: the ADS server and the
// controller that feeds it from the services file and port discovery.
type controlPlane struct {
	ln       net.Listener
	gs       *grpc.Server
	ctrl     *xds.Controller
	path     string // the services file ("" for none)
	log      *slog.Logger
	failOpen *prometheus.GaugeVec
}

// loadServices reads the services file; no file is an empty IR.
func loadServices(path string) (envoy.IR, error) {
	if path == "" {
		return envoy.IR{}, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return envoy.IR{}, fmt.Errorf("--services: %w", err)
	}
	return envoy.ParseServices(path, src)
}

// newControlPlane builds the control plane and binds its listener, or
// returns nil when cfg.xdsAddr is empty.
func newControlPlane(ctx context.Context, cfg *serveConfig, log *slog.Logger, reg prometheus.Registerer, registry ports.Registry) (*controlPlane, error) {
	if cfg.xdsAddr == "" {
		return nil, nil
	}
	ir, err := loadServices(cfg.services)
	if err != nil {
		return nil, err
	}
	srv, err := xds.NewServer(ctx, xds.ServerOptions{Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{
		ctrl: xds.NewController(srv, registry, xds.ControllerOptions{IR: ir, Logger: log}),
		gs:   grpc.NewServer(xds.GRPCServerOptions()...),
		path: cfg.services,
		log:  log,
		failOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gavel_xds_service_fail_open",
			Help: "1 for each service whose Envoys allow requests when gavel cannot answer (fail_open in the services file).",
		}, []string{"service"}),
	}
	if reg != nil {
		if err := reg.Register(cp.failOpen); err != nil {
			return nil, err
		}
	}
	cp.noteFailOpen(ir)
	srv.Register(cp.gs)
	if cp.ln, err = listen(log, "xds", cfg.xdsAddr, cfg.xdsAddr == defaultXDSAddr); err != nil {
		return nil, err
	}
	return cp, nil
}

// run serves xDS and runs the controller until ctx ends.
func (cp *controlPlane) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- cp.ctrl.Run(ctx) }()
	go func() {
		<-ctx.Done()
		cp.gs.GracefulStop()
	}()
	if err := cp.gs.Serve(cp.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("xds controller: %w", err)
	}
	return nil
}

// reload rereads the services file (on SIGHUP); a file that does not parse
// is logged and the running configuration stays.
func (cp *controlPlane) reload() {
	if cp.path == "" {
		return
	}
	ir, err := loadServices(cp.path)
	if err != nil {
		cp.log.Error("services file rejected; the running configuration stays", "err", err)
		return
	}
	cp.ctrl.SetIR(ir)
	cp.noteFailOpen(ir)
	cp.log.Info("services file reloaded", "path", cp.path, "services", len(ir.Services))
}

// noteFailOpen logs and exports the services that chose to fail open: an
// explicit, visible exception to gavel's fail-closed default.
func (cp *controlPlane) noteFailOpen(ir envoy.IR) {
	cp.failOpen.Reset()
	for _, s := range ir.Services {
		if s.FailOpen {
			cp.failOpen.WithLabelValues(s.Name).Set(1)
			cp.log.Warn("service fails open: its requests are allowed when gavel cannot answer", "service", s.Name)
		}
	}
}

// snapshotJSON is the admin dump of a node's current configuration.
func (cp *controlPlane) snapshotJSON(node string) ([]byte, error) {
	snap, err := cp.ctrl.Snapshot(node)
	if err != nil {
		return nil, err
	}
	return xds.DumpJSON(snap)
}

func newControlPlaneCmd() *cobra.Command {
	cfg := &serveConfig{}
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run only the control plane: xDS, port discovery and their HTTP API",
		Long: `Run the xDS control plane alone: ADS for Envoy sidecars from --services and
port discovery, with the HTTP API for port registrations, the node snapshot dump,
/metrics, /healthz and /readyz. No ext_authz here: run gavel authz beside each
Envoy, or gavel serve for everything in one process. SIGHUP reloads --services.`,
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv("GOGC") == "" {
				// The control plane does not allocate per request as the
				// decision path does; its heap is mostly long-lived per-node
				// state, so Go's default keeps its memory lower at no cost
				// in push latency (docs/benchmarks.md, gavel-bench xds).
				debug.SetGCPercent(100)
			}
			return run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.config, "config", "", "YAML file with flag values (keys are flag names)")
	f.StringVar(&cfg.xdsAddr, "xds-addr", defaultXDSAddr, "xDS (ADS) listen address")
	f.StringVar(&cfg.services, "services", "", "YAML file of services, routes, policies and resilience settings (SIGHUP reloads it)")
	f.StringVar(&cfg.httpAddr, "http-addr", defaultHTTPAddr, "HTTP listen address (port discovery, snapshot dump, /metrics, /healthz, /readyz)")
	f.StringVar(&cfg.portRange, "port-range", "20000-29999", "ports that port discovery allocates from, MIN-MAX")
	f.DurationVar(&cfg.leaseTTL, "lease-ttl", 30*time.Second, "port discovery lease TTL when a registration gives none")
	f.StringVar(&cfg.dataDir, "data-dir", "./gavel-data", "where gavel keeps its data and discovery file")
	f.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&cfg.logFormat, "log-format", "json", "log format: json or text")
	f.BoolVar(&cfg.pprof, "pprof", false, "serve Go profiling at /debug/pprof/ on the HTTP port")
	f.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may finish after SIGTERM")
	cfg.tracing.Flags(f)
	return cmd
}
