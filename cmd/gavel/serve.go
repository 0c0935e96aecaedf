package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gavel-dev/gavel/api"
	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/cmd/internal/discovery"
	"github.com/gavel-dev/gavel/cmd/internal/telemetry"
	"github.com/gavel-dev/gavel/extauthz"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
	"github.com/gavel-dev/gavel/xds/ports"
)

const (
	defaultAuthzAddr = "127.0.0.1:9191"
	defaultHTTPAddr  = "127.0.0.1:8181"
)

// serveConfig is every flag of serve and authz.
type serveConfig struct {
	config          string
	bundle          string
	apiKeys         string
	authzAddr       string
	httpAddr        string
	dataDir         string
	logLevel        string
	logFormat       string
	cacheSize       int
	cacheTTL        time.Duration
	noCache         bool
	decisionTimeout time.Duration
	maxInFlight     int
	dryRun          []string
	defaultEntry    string
	entryPoints     []string
	reflection      bool
	skipBodyParse   bool
	shutdownTimeout time.Duration
	pprof           bool
	streamWorkers   int
	authzEvents     string
	// redis configures the optional Redis tier (redis.go).
	redis redisConfig
	// httpOptional: the HTTP port is off unless --http-addr is given (authz).
	httpOptional bool
	// portRange and leaseTTL configure port discovery (serve only; off
	// when portRange is empty).
	portRange string
	leaseTTL  time.Duration
	// xdsAddr and services configure the control plane (serve only; off
	// when xdsAddr is empty).
	xdsAddr  string
	services string
	// store is where serve keeps its data (off for authz).
	store storeConfig
	// auth authenticates HTTP API callers (keys.go; serve only).
	auth authConfig
	// state is the audit trail and bundle lifecycle (state.go; serve only).
	state stateConfig
	// tracing exports spans over OTLP (tracing.go; off by default).
	tracing telemetry.Config
}

func (c *serveConfig) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.config, "config", "", "YAML file with flag values (keys are flag names)")
	f.StringVar(&c.bundle, "bundle", "", "policy bundle: a directory or an OPA bundle .tar.gz (default: the built-in bundle)")
	f.StringVar(&c.apiKeys, "api-keys", "", "JSON file of API keys for the built-in bundle: {\"<key or sha256:hex>\": {\"name\": ..., \"roles\": [...]}}")
	f.StringVar(&c.authzAddr, "authz-addr", defaultAuthzAddr, "ext_authz gRPC listen address")
	f.StringVar(&c.dataDir, "data-dir", "./gavel-data", "where gavel keeps its data and discovery file")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&c.logFormat, "log-format", "json", "log format: json or text")
	f.IntVar(&c.cacheSize, "cache-size", 100_000, "decision cache entries kept in process")
	f.DurationVar(&c.cacheTTL, "cache-ttl", 60*time.Second, "longest a cached decision lives")
	f.BoolVar(&c.noCache, "no-cache", false, "evaluate every decision (turn the decision cache off)")
	f.DurationVar(&c.decisionTimeout, "decision-timeout", 100*time.Millisecond, "bound on one policy evaluation; past it the request is denied with reason code timeout")
	f.IntVar(&c.maxInFlight, "max-in-flight", 4096, "concurrent decisions; past it checks are denied with 429 (reason code overloaded)")
	f.StringSliceVar(&c.dryRun, "dry-run", nil, "entry points to run in dry-run mode: decided, logged and counted, never enforced (repeatable)")
	f.StringVar(&c.defaultEntry, "default-entry", extauthz.DefaultEntry, "entry point for routes that name none in their policy context extension")
	f.StringSliceVar(&c.entryPoints, "entry-point", nil, "rule paths requests may name as their policy, beyond the default and those the bundle marks entrypoint: true (repeatable)")
	f.BoolVar(&c.reflection, "grpc-reflection", false, "register gRPC reflection on the ext_authz port")
	f.BoolVar(&c.skipBodyParse, "skip-body-parse", false, "leave parsed_body and truncated_body out of the input")
	f.StringVar(&c.authzEvents, "authz-events", "denied", "ext_authz and HTTP authz decisions published on the event stream: none, denied (denials and errors) or all")
	f.IntVar(&c.streamWorkers, "grpc-stream-workers", 0, "goroutines that serve ext_authz calls from a pool (0: GOMAXPROCS, -1: a new goroutine per call)")
	f.BoolVar(&c.pprof, "pprof", false, "serve Go profiling at /debug/pprof/ on the HTTP port")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may finish after SIGTERM")
	c.redis.flags(f)
	c.tracing.Flags(f)
}

func newServeCmd() *cobra.Command {
	cfg := &serveConfig{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run gavel: ext_authz, the HTTP API (authorization endpoint, health, metrics)",
		Long: `Run gavel with everything in one process. With no flags it loads the built-in
policy bundle, serves ext_authz on 127.0.0.1:9191 and HTTP on 127.0.0.1:8181,
and keeps its data in ./gavel-data. When a default port is taken it binds a free
one and writes the addresses it bound to the discovery file.

SIGHUP reloads the bundle (and the --api-keys file); a bundle that fails to load
or compile is rejected and the running one keeps serving.`,
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cfg)
		},
	}
	cfg.flags(cmd)
	cmd.Flags().StringVar(&cfg.httpAddr, "http-addr", defaultHTTPAddr, "HTTP listen address (authorization endpoint, port discovery, /metrics, /healthz, /readyz)")
	cmd.Flags().StringVar(&cfg.portRange, "port-range", "20000-29999", "ports that port discovery allocates from, MIN-MAX")
	cmd.Flags().DurationVar(&cfg.leaseTTL, "lease-ttl", 30*time.Second, "port discovery lease TTL when a registration gives none")
	cmd.Flags().StringVar(&cfg.xdsAddr, "xds-addr", defaultXDSAddr, "xDS (ADS) listen address for Envoy sidecars (off when empty)")
	cfg.store.flags(cmd)
	cfg.auth.flags(cmd.Flags())
	cfg.state.flags(cmd.Flags())
	cmd.Flags().StringVar(&cfg.services, "services", "", "YAML file of services, routes, policies and resilience settings served over xDS (SIGHUP reloads it)")
	return cmd
}

func newAuthzCmd() *cobra.Command {
	cfg := &serveConfig{httpOptional: true}
	cmd := &cobra.Command{
		Use:   "authz",
		Short: "Run only the ext_authz server, as a sidecar beside Envoy",
		Long: `Run only the ext_authz gRPC server. Give --http-addr to also serve /metrics,
/healthz, /readyz and the HTTP authorization endpoint.`,
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cfg)
		},
	}
	cfg.flags(cmd)
	cmd.Flags().StringVar(&cfg.httpAddr, "http-addr", "", "HTTP listen address for /metrics, /healthz, /readyz and /authz (off when empty)")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gavel_build_info",
		Help: "gavel's version; always 1.",
	}, []string{"version"})
	info.WithLabelValues(buildVersion()).Set(1)
	reg.MustRegister(info)
	return reg
}

func loadBundle(path string) (*policy.Bundle, error) {
	return loadBundleWithKeys(path, "")
}

// loadBundleWithKeys loads the bundle at path, or the built-in one, with the
// key table from keysPath when given (built-in bundle only).
func loadBundleWithKeys(path, keysPath string) (*policy.Bundle, error) {
	switch {
	case path != "" && keysPath != "":
		return nil, errors.New("--api-keys configures the built-in bundle; a bundle given with --bundle carries its own data")
	case path != "":
		return policy.LoadBundle(path, policy.Limits{})
	case keysPath != "":
		keys, err := builtin.ReadKeys(keysPath)
		if err != nil {
			return nil, err
		}
		return builtin.BundleWithKeys(keys)
	}
	return builtin.Bundle()
}

// run starts gavel's parts in order (policy, ext_authz, port discovery,
// the xDS control plane, HTTP), publishes the discovery file, and stops
// them gracefully when ctx ends.
func run(ctx context.Context, cfg *serveConfig) error {
	log, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	tracing, stopTracing, err := startTracing(ctx, cfg.tracing, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	st, err := cfg.store.open(ctx, cfg.dataDir, log)
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	reg := newRegistry()
	breakers := breaker.NewMetrics(reg)
	rt := newRedis(ctx, cfg.redis, reg, breakers, log)
	defer rt.close()
	bus := newEventBus(cfg, rt)
	rt.publishBreaker(bus)
	portReg, err := newPortRegistry(cfg)
	if err != nil {
		return err
	}

	var svc *policy.Service
	var state *state
	var authz *extauthz.Server
	var gs *grpc.Server
	var hs *health.Server
	var authzLn net.Listener
	if cfg.authzAddr != "" {
		svc = policy.NewService(policy.Options{
			Cache:       policy.CacheOptions{Disabled: cfg.noCache, Size: cfg.cacheSize, TTL: cfg.cacheTTL, Shared: rt.shared()},
			Compile:     policy.CompileOptions{EntryPoints: append([]string{cfg.defaultEntry}, cfg.entryPoints...)},
			DryRun:      cfg.dryRun,
			EvalTimeout: cfg.decisionTimeout,
			Metrics:     policy.NewMetrics(reg),
			Logger:      log,
		})
		b, err := loadBundleWithKeys(cfg.bundle, cfg.apiKeys)
		if err != nil {
			return err
		}
		if _, err := svc.Activate(ctx, b); err != nil {
			return err
		}
		for _, e := range cfg.dryRun {
			log.Warn("dry-run: decisions of this entry point are not enforced", "entry", e)
		}
		compile := policy.CompileOptions{EntryPoints: append([]string{cfg.defaultEntry}, cfg.entryPoints...)}
		if state, err = newState(ctx, cfg.state, st, svc, compile, bus, breakers, cfg.dataDir, reg, log); err != nil {
			return err
		}
		published, err := authzEvents(cfg.authzEvents, bus)
		if err != nil {
			return err
		}
		authz = extauthz.NewServer(svc, extauthz.Options{
			Audit:        sinks(published, state.sink()),
			DefaultEntry: cfg.defaultEntry,
			MaxInFlight:  cfg.maxInFlight,
			Input:        extauthz.InputOptions{SkipBodyParse: cfg.skipBodyParse},
			Metrics:      extauthz.NewMetrics(reg),
			Logger:       log,

			// The decision span reads Envoy's trace context from the
			// gRPC metadata and the CheckRequest itself (extauthz
			// parentContext), so the gRPC server gets no stats handler.
			TracerProvider: tracing.Provider,
			Propagator:     tracing.Propagator,
		})
		gs, hs = extauthz.NewGRPCServer(authz, extauthz.GRPCOptions{Reflection: cfg.reflection, StreamWorkers: cfg.streamWorkers})
		if authzLn, err = listen(log, "ext_authz", cfg.authzAddr, cfg.authzAddr == defaultAuthzAddr); err != nil {
			return err
		}
		defer authzLn.Close()
		setServing(hs, healthpb.HealthCheckResponse_SERVING)
	}
	var registry ports.Registry
	runPorts := func(context.Context) error { return nil }
	if portReg != nil { // not a nil *Memory in the interface
		registry, runPorts = portReg, portReg.Run
		if st != nil {
			pr, err := newPersistentRegistry(ctx, portReg, st, log)
			if err != nil {
				return fmt.Errorf("port discovery: restore from the store: %w", err)
			}
			registry, runPorts = pr, pr.Run
		}
		registry = &eventRegistry{Registry: registry, bus: bus, replica: replicaID()}
	}
	cp, err := newControlPlane(ctx, cfg, log, reg, registry)
	if err != nil {
		return err
	}

	var httpLn net.Listener
	var hsrv *http.Server
	var agents *agentAPI
	var stream *eventsAPI
	var authn *auth.Authenticator
	if cfg.httpAddr != "" {
		if httpLn, err = listen(log, "http", cfg.httpAddr, cfg.httpAddr == defaultHTTPAddr && !cfg.httpOptional); err != nil {
			return err
		}
		opts := api.Options{
			Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
			Pprof:   cfg.pprof,
			Logger:  log,
		}
		if svc != nil {
			opts.Ready = func() api.Status {
				rev := svc.Revision()
				status := api.Status{Ready: rev != "", Revision: rev, Checks: map[string]string{"policy": readyText(rev)}}
				rt.addCheck(status.Checks) // Redis down never makes gavel unready
				return status
			}
			opts.Authz = authz.HTTPHandler(extauthz.HTTPOptions{})
			if stream, err = newEventsAPI(cfg.dataDir, bus, reg, log); err != nil {
				return err
			}
			if agents, err = newAgentAPI(cfg.dataDir, svc, sinks(stream.decisions, state.sink()), auditTrail(st), reg, log, tracing); err != nil {
				return err
			}
			opts.Hooks = agents.hooks
			opts.Validate = agents.validateHTTP
			opts.MCP = agents.mcp
			opts.Events = stream.handler(agents.token)
			if state != nil {
				opts.Bundles, opts.Decisions = state.bundles, state.decisions
			}
		}
		opts.Ports = registry
		if cp != nil {
			opts.XDSSnapshot = cp.snapshotJSON
		}
		opts.Ready = storeReady(opts.Ready, st)
		if authn, err = newAPIAuth(ctx, cfg.auth, st, agents, stream, state.sink(), log); err != nil {
			return err
		} else if authn != nil {
			opts.Auth, opts.MetricsAuth = authn, cfg.auth.metricsAuth
		}
		hsrv = &http.Server{
			Handler:           httpTracing(tracing, api.New(opts)),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}

	dpath := discovery.Path(cfg.dataDir)
	info := discovery.Info{PID: os.Getpid(), Version: buildVersion(), StartedAt: time.Now().UTC(), DataDir: absPath(cfg.dataDir)}
	if authzLn != nil {
		info.AuthzAddr = authzLn.Addr().String()
	}
	if httpLn != nil {
		info.HTTPAddr = httpLn.Addr().String()
	}
	if agents != nil {
		info.HookToken = agents.token
	}
	if stream != nil {
		info.ViewerToken = stream.viewerToken
	}
	if cp != nil {
		info.XDSAddr = cp.ln.Addr().String()
	}
	if err := discovery.Write(dpath, info); err != nil {
		log.Warn("discovery file not written", "path", dpath, "err", err)
	}
	defer discovery.Remove(dpath, info.PID)
	log.Info("gavel serving", "version", info.Version, "authz_addr", info.AuthzAddr, "http_addr", info.HTTPAddr, "xds_addr", info.XDSAddr,
		"discovery_file", dpath)

	auditCtx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAudit()
	g, gctx := errgroup.WithContext(ctx)
	if gs != nil {
		g.Go(func() error {
			if err := gs.Serve(authzLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("ext_authz server: %w", err)
			}
			return nil
		})
	}
	if hsrv != nil {
		g.Go(func() error {
			if err := hsrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http server: %w", err)
			}
			return nil
		})
	}
	if portReg != nil {
		g.Go(func() error { return runPorts(gctx) })
	}
	if cp != nil {
		g.Go(func() error { return cp.run(gctx) })
	}
	if authn != nil {
		g.Go(func() error { return authn.Run(gctx) })
	}
	g.Go(func() error {
		reloadOnHUP(gctx, log, svc, cp, func() (*policy.Bundle, error) { return loadBundleWithKeys(cfg.bundle, cfg.apiKeys) })
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "timeout", cfg.shutdownTimeout.String())
		if hs != nil {
			setServing(hs, healthpb.HealthCheckResponse_NOT_SERVING)
		}
		shutdown(gs, hsrv, cfg.shutdownTimeout, stream.shutdown)
		stopAudit() // the servers are done: write the last records, then stop
		return nil
	})
	g.Go(func() error { return state.run(gctx, auditCtx) })
	err = g.Wait()
	log.Info("stopped")
	return err
}

// newPortRegistry builds the port discovery registry, or nil when the
// command does not serve port discovery.
func newPortRegistry(cfg *serveConfig) (*ports.Memory, error) {
	if cfg.portRange == "" {
		return nil, nil
	}
	lo, hi, err := ports.ParseRange(cfg.portRange)
	if err != nil {
		return nil, fmt.Errorf("--port-range: %w", err)
	}
	if cfg.leaseTTL < time.Second {
		return nil, fmt.Errorf("--lease-ttl %s: want at least 1s", cfg.leaseTTL)
	}
	return ports.NewMemory(ports.Options{PortMin: lo, PortMax: hi, DefaultTTL: cfg.leaseTTL,
		MaxTTL: max(10*time.Minute, cfg.leaseTTL)}), nil
}

func readyText(rev string) string {
	if rev == "" {
		return "no active bundle"
	}
	return "ok"
}

func setServing(hs *health.Server, st healthpb.HealthCheckResponse_ServingStatus) {
	hs.SetServingStatus("", st)
	hs.SetServingStatus("envoy.service.auth.v3.Authorization", st)
}

// shutdown stops accepting, lets in-flight requests finish within timeout,
// then closes what is left. The also functions (the event stream's
// connections, which http.Server.Shutdown does not track) run alongside.
func shutdown(gs *grpc.Server, hsrv *http.Server, timeout time.Duration, also ...func(context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, f := range also {
		wg.Go(func() { f(ctx) })
	}
	done := make(chan struct{})
	go func() {
		if gs != nil {
			gs.GracefulStop()
		}
		close(done)
	}()
	if hsrv != nil {
		_ = hsrv.Shutdown(ctx)
	}
	select {
	case <-done:
	case <-ctx.Done():
		if gs != nil {
			gs.Stop()
		}
	}
}

// reloadOnHUP reloads, on SIGHUP, the services file (cp) and the bundle
// with its API key file (svc). Whatever fails to load or compile is logged
// and the running configuration keeps serving.
func reloadOnHUP(ctx context.Context, log *slog.Logger, svc *policy.Service, cp *controlPlane, load func() (*policy.Bundle, error)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if cp != nil {
			cp.reload()
		}
		if svc == nil {
			continue
		}
		b, err := load()
		if err != nil {
			log.Error("bundle rejected", "err", err, "serving", svc.Revision())
			continue
		}
		if b.Revision == svc.Revision() {
			log.Info("SIGHUP: bundle unchanged", "revision", b.Revision)
			continue
		}
		_, _ = svc.Activate(ctx, b) // Activate logs both outcomes
	}
}

// listen binds addr; when the address is a default and taken, it binds a
// free port on the same host instead and says so.
func listen(log *slog.Logger, name, addr string, fallback bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w (and on a free port: %v)", name, addr, err, err2)
	}
	log.Warn("default port taken, bound a free one; see the discovery file", "listener", name, "wanted", addr, "bound", ln.Addr().String())
	return ln, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// auditTrail is the store's audit trail, or nil without a store.
func auditTrail(st store.Store) store.Audit {
	if st == nil {
		return nil
	}
	return st
}
