package xds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds/ports"
)

// controlPlane is a control plane (xDS server, controller, port registry
// and the gRPC server serving xDS) that a test can stop before it ends,
// unlike newFixture's, and start again on the same address.
type controlPlane struct {
	srv  *Server
	ctrl *Controller
	reg  *ports.Memory
	addr string

	cancel   context.CancelFunc // the server's and the controller's context
	g        *grpc.Server
	served   chan error
	ran      chan error
	stopOnce sync.Once
}

// startControlPlane runs a new control plane for ir on addr (host:port;
// port 0 picks one). Binding is retried for a few seconds, for an address
// that a control plane just stopped listening on. The control plane stops
// when the test ends, if stop was not called before.
func startControlPlane(t *testing.T, addr string, ir envoy.IR) *controlPlane {
	t.Helper()
	lis := listenRetry(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := NewServer(ctx, ServerOptions{Logger: log})
	if err != nil {
		cancel()
		lis.Close()
		t.Fatal(err)
	}
	reg := ports.NewMemory(ports.Options{})
	ctrl := NewController(srv, reg, ControllerOptions{IR: ir, Holdoff: time.Millisecond, Logger: log})
	g := grpc.NewServer(GRPCServerOptions()...)
	srv.Register(g)
	cp := &controlPlane{
		srv: srv, ctrl: ctrl, reg: reg, addr: lis.Addr().String(),
		cancel: cancel, g: g, served: make(chan error, 1), ran: make(chan error, 1),
	}
	go func() { cp.served <- g.Serve(lis) }()
	go func() { cp.ran <- ctrl.Run(ctx) }()
	t.Cleanup(func() { cp.stop(t) })
	return cp
}

// listenRetry listens on addr, retrying (bounded) while the address is in
// use.
func listenRetry(t *testing.T, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil {
			return lis
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts the control plane down completely: the context of the xDS
// server (which ends its streams) and of the controller, then the gRPC
// server, gracefully (bounded, then forcibly). The port is free when it
// returns. Calling it again does nothing.
func (cp *controlPlane) stop(t *testing.T) {
	t.Helper()
	cp.stopOnce.Do(func() {
		cp.cancel()
		stopped := make(chan struct{})
		go func() { cp.g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(wait):
			t.Errorf("control plane %s: GracefulStop did not return within %v; stopping it", cp.addr, wait)
			cp.g.Stop()
			<-stopped
		}
		if err := <-cp.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("control plane %s: grpc Serve: %v", cp.addr, err)
		}
		if err := <-cp.ran; err != nil {
			t.Errorf("control plane %s: controller Run: %v", cp.addr, err)
		}
	})
}

// register registers a backend at addr (host:port on 127.0.0.1) for
// service in the control plane's registry.
func (cp *controlPlane) register(t *testing.T, service, addr string) {
	t.Helper()
	registerBackend(t, cp.reg, service, addr)
}

// TestProxylessControlPlaneRestart proves that gRPC-Go's xDS client rides
// out a control plane restart: while the control plane is down, it keeps
// its last configuration and its RPCs keep reaching both backends; once a
// new control plane (new server, controller and registry, nothing carried
// over) listens on the same address, the client reconnects (with backoff)
// and takes the new configuration, which has a third backend.
//
// The new control plane's snapshot version is made to differ from the one
// the client last ACKed: see TestProxylessControlPlaneRestartSameVersion.
func TestProxylessControlPlaneRestart(t *testing.T) {
	testProxylessControlPlaneRestart(t, false)
}

// TestProxylessControlPlaneRestartSameVersion is the restart with the new
// control plane's snapshot version equal to the one the client last ACKed
// from the old control plane (what happens without intervention: both
// count from 1, and both build once for the same burst of registrations).
// On its new stream gRPC-Go sends its last ACKed version_info ("1"); were
// the cache to trust it, it would open a watch at "1" and never answer the
// new controller's snapshot "1" (respondSOTWWatches answers only a
// different version). The server forgets versions a stream was never sent
// (server.go, onStreamRequest), so the client gets the new configuration.
func TestProxylessControlPlaneRestartSameVersion(t *testing.T) {
	testProxylessControlPlaneRestart(t, true)
}

func testProxylessControlPlaneRestart(t *testing.T, sameVersion bool) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ir := envoy.IR{Services: []envoy.Service{{
		Name:     "greeter",
		Protocol: envoy.ProtocolGRPC,
		Listener: envoy.Listener{Port: 10000},
	}}}
	backends := []string{startBackend(t), startBackend(t), startBackend(t)}

	cp := startControlPlane(t, "127.0.0.1:0", ir)
	for _, b := range backends[:2] {
		cp.register(t, "greeter", b)
	}
	c := startProxylessClient(t, cp.addr)
	assertSpread := func(stage string, counts map[string]int, want []string) {
		t.Helper()
		for _, b := range want {
			if counts[b] == 0 {
				t.Errorf("%s: backend %s got no RPCs: %v", stage, b, counts)
			}
		}
		if total(counts) != proxylessBatch {
			t.Errorf("%s: %d RPCs answered, want %d: %v", stage, total(counts), proxylessBatch, counts)
		}
		t.Logf("%s: %v", stage, counts)
	}
	assertSpread("before the restart", c.expect(backends[:2]), backends[:2])
	oldVersion := cp.ctrl.Version()

	// The control plane goes away entirely. The client's ADS stream
	// breaks; it keeps its last configuration and its connections to the
	// backends.
	cp.stop(t)
	if conn, err := net.DialTimeout("tcp", cp.addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("something still listens on %s after the control plane stopped", cp.addr)
	}
	for i := range 3 {
		assertSpread("control plane down, batch "+strconv.Itoa(i+1), c.expect(backends[:2]), backends[:2])
	}

	// A new control plane on the same address, which knows nothing of the
	// old one: the two backends register again, and a third one.
	cp2 := startControlPlane(t, cp.addr, ir)
	if cp2.addr != cp.addr {
		t.Fatalf("the new control plane listens on %s, want %s", cp2.addr, cp.addr)
	}
	for _, b := range backends {
		cp2.register(t, "greeter", b)
	}
	// Bring the new control plane's version to (sameVersion) or past the
	// client's, one SetIR (one more build) at a time.
	awaitBuild(t, cp2.ctrl, 1)
	for {
		v := cp2.ctrl.Version()
		if sameVersion && v > oldVersion {
			t.Skipf("the new control plane is at version %d, already past the old one's %d", v, oldVersion)
		}
		if (sameVersion && v == oldVersion) || (!sameVersion && v != oldVersion) {
			break
		}
		cp2.ctrl.SetIR(ir)
		awaitBuild(t, cp2.ctrl, v+1)
	}

	// gRPC-Go's xDS client redials with exponential backoff (1 s at
	// first); each expect tries for up to 10 s.
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	cmd := "expect " + strings.Join(backends, ",") + " greeter"
	for {
		line := c.send(cmd)
		counts, err := parseCounts(line)
		if err == nil {
			assertSpread("after the restart", counts, backends)
			t.Logf("resynced %v after the new control plane started (old version %d, new %d)",
				time.Since(start).Round(time.Millisecond), oldVersion, cp2.ctrl.Version())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not reach all three backends within 15s of the restart: %v\n"+
				"old control plane version %d, new %d\nstderr:\n%s",
				err, oldVersion, cp2.ctrl.Version(), c.stderrText())
		}
	}
	if _, err := cp2.ctrl.Snapshot("proxyless-1"); err != nil {
		t.Errorf("the new control plane has no snapshot for the proxyless node: %v", err)
	}
}

// awaitBuild waits (bounded) until the controller's snapshot version is
// at least v.
func awaitBuild(t *testing.T, ctrl *Controller, v uint64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for ctrl.Version() < v {
		if time.Now().After(deadline) {
			t.Fatalf("the controller is at version %d, want %d within %v", ctrl.Version(), v, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
