package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/gavel-dev/gavel/api"
	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds"
	"github.com/gavel-dev/gavel/xds/ports"
)

// testControlPlane is gavel's control plane wired as gavel controlplane
// wires it: the xDS server and controller on a port registry, the HTTP API
// with port discovery and /metrics (with the process collector).
type testControlPlane struct {
	xdsAddr string
	api     string
	reg     *ports.Memory
}

func startTestControlPlane(t *testing.T) *testControlPlane {
	t.Helper()
	src, err := os.ReadFile("testdata/xds-services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ir, err := envoy.ParseServices("testdata/xds-services.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := xds.NewServer(ctx, xds.ServerOptions{Logger: log, Registerer: promReg})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	reg := ports.NewMemory(ports.Options{})
	ctrl := xds.NewController(srv, reg, xds.ControllerOptions{IR: ir, Logger: log})
	gs := grpc.NewServer(xds.GRPCServerOptions()...)
	srv.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	ran := make(chan error, 1)
	go func() { ran <- ctrl.Run(ctx) }()
	hs := httptest.NewServer(api.New(api.Options{
		Metrics: promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}),
		Ports:   reg,
		Logger:  log,
	}))
	t.Cleanup(func() {
		hs.Close()
		cancel()
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("xDS server: %v", err)
		}
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("controller: %v", err)
		}
	})
	return &testControlPlane{xdsAddr: lis.Addr().String(), api: hs.URL, reg: reg}
}

// TestXDSEndToEnd runs gavel-bench xds against a real control plane: five
// gRPC xDS clients connect, two new endpoints reach every one of them, the
// release of the first reaches them too, and the registrations are gone
// afterwards.
func TestXDSEndToEnd(t *testing.T) {
	cp := startTestControlPlane(t)
	var progress bytes.Buffer
	rep, err := runXDS(t.Context(), xdsConfig{
		XDSAddr: cp.xdsAddr, API: cp.api, Service: "greeter",
		Clients: 5, Rounds: 2, Timeout: 10 * time.Second, ConnectBatch: 2,
		Pause: 50 * time.Millisecond, PID: os.Getpid(), Progress: &progress,
	})
	if err != nil {
		t.Fatalf("runXDS: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())

	names := []string{}
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		if p.Seen != 5 || p.Missing != 0 || len(p.lat) != 5 {
			t.Errorf("%s: seen %d, missing %d, %d latencies; want all 5 clients", p.Name, p.Seen, p.Missing, len(p.lat))
		}
		if p.MaxMs <= 0 || p.P50ms > p.P99ms || p.P99ms > p.MaxMs {
			t.Errorf("%s: latencies p50 %v p99 %v max %v are not ordered and positive", p.Name, p.P50ms, p.P99ms, p.MaxMs)
		}
	}
	if got, want := strings.Join(names, ","), "connect,round 1,round 2,release"; got != want {
		t.Errorf("phases %s, want %s", got, want)
	}
	// Each round's endpoint is a different backend.
	if rep.Phases[1].Backend == rep.Phases[2].Backend || rep.Phases[3].Backend != rep.Phases[0].Backend {
		t.Errorf("backends: %+v", rep.Phases)
	}
	if rep.All.Seen != 10 || rep.All.Clients != 10 || rep.All.Missing != 0 {
		t.Errorf("all rounds: seen %d of %d, missing %d; want 10 of 10", rep.All.Seen, rep.All.Clients, rep.All.Missing)
	}
	// The control plane here is this process: its collector reports it.
	if rep.RSSBeforeMiB <= 0 || rep.RSSConnectedMiB <= 0 || rep.RSSEndMiB <= 0 || rep.RSSClosedMiB <= 0 || rep.PeakRSSMiB <= 0 {
		t.Errorf("memory figures missing: %+v", rep)
	}

	// The run released its registrations.
	list, err := cp.reg.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("registrations left after the run: %+v", list)
	}

	var table, js bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"round 2", "release", "rounds", "5/5", "10/10", "control plane rss"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table has no %q:\n%s", want, table.String())
		}
	}
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded map[string]any
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"phases", "all_rounds", "control_plane_rss_connected_mib"} {
		if _, ok := decoded[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, js.String())
		}
	}
}

// TestXDSEndpointNeverArrives proves the bench fails when the clients never
// see the endpoint: the service is registered in port discovery but is not
// in the control plane's services file, so no client is given it.
func TestXDSEndpointNeverArrives(t *testing.T) {
	cp := startTestControlPlane(t)
	start := time.Now()
	rep, err := runXDS(t.Context(), xdsConfig{
		XDSAddr: cp.xdsAddr, API: cp.api, Service: "unknown",
		Clients: 3, Rounds: 1, Timeout: time.Second, Pause: time.Millisecond,
	})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("runXDS: error %v, want clients missing", err)
	}
	if rep == nil || len(rep.Phases) == 0 || rep.Phases[0].Seen != 0 || rep.Phases[0].Missing != 3 {
		t.Fatalf("report %+v: want the connect phase with all 3 clients missing", rep)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v: the timeout is 1s per phase", d)
	}
}

// TestXDSCommand runs the subcommand through realMain, as a user would.
func TestXDSCommand(t *testing.T) {
	cp := startTestControlPlane(t)
	var stdout, stderr bytes.Buffer
	code := realMain(t.Context(), []string{"xds", "--xds", cp.xdsAddr, "--api", cp.api,
		"--clients", "2", "--rounds", "1", "--pause", "0s", "--timeout", "10s", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr.String())
	}
	var rep struct {
		Phases []struct {
			Name string `json:"name"`
			Seen int    `json:"seen"`
		} `json:"phases"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if len(rep.Phases) != 3 {
		t.Fatalf("phases %+v, want connect, round 1, release", rep.Phases)
	}
	for _, p := range rep.Phases {
		if p.Seen != 2 {
			t.Errorf("%s: seen %d, want 2", p.Name, p.Seen)
		}
	}
}

func TestXDSUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"xds", "--clients", "0"}, 2, "--clients must be at least 1"},
		{[]string{"xds", "--rounds", "0"}, 2, "--rounds must be at least 1"},
		{[]string{"xds", "--xds", "10.0.0.1:18000"}, 1, "not a loopback address"},
		{[]string{"xds", "--api", "http://10.0.0.1:8181"}, 1, "not a loopback address"},
		{[]string{"xds", "--api", "127.0.0.1:8181"}, 1, "want http://HOST:PORT"},
		{[]string{"xds", "-h"}, 0, "-connect-batch"},
		{[]string{"help"}, 0, "xds"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(t.Context(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("gavel-bench %q: exit %d, output %q; want exit %d and %q", tt.args, code, stdout.String()+stderr.String(), tt.code, tt.out)
		}
	}
}

func TestParseProcessMetrics(t *testing.T) {
	text := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.23731968e+08
process_cpu_seconds_total 12.5
process_resident_memory_bytes_other 1
`
	m, err := parseProcessMetrics(strings.NewReader(text))
	if err != nil || !m.ok || m.rssBytes != 123731968 || m.cpuSeconds != 12.5 {
		t.Errorf("parseProcessMetrics = %+v, %v", m, err)
	}
	if _, err := parseProcessMetrics(strings.NewReader("go_goroutines 5\n")); err == nil {
		t.Error("no process metrics: want an error")
	}
	hwm, err := parseVmHWM(strings.NewReader("Name:\tgavel\nVmPeak:\t  1000 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n"))
	if err != nil || hwm != 2048*1024 {
		t.Errorf("parseVmHWM = %v, %v", hwm, err)
	}
	if _, err := parseVmHWM(strings.NewReader("Name:\tgavel\n")); err == nil {
		t.Error("no VmHWM: want an error")
	}
}
