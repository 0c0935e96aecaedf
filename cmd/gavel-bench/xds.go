package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds" // the xDS resolver, client and balancers
)

// The xds subcommand measures how fast gavel's control plane propagates a
// new endpoint to many proxyless gRPC clients. Every client is a real
// gRPC-Go channel to xds:///SERVICE with its own xDS client (its own ADS
// stream and node id). The service's cluster balances round_robin, which
// connects to every endpoint it is given at once, so an endpoint has reached
// a client when the client's connection to it is accepted: each backend is a
// real gRPC server whose listener timestamps every accepted connection, and
// the client that opened it is known from the connection's two ends, which
// its dialer records.
// The latency of a round is from just before the registration request is
// sent to the port discovery API to that accept, per client.

// xdsConfig configures an xds run.
type xdsConfig struct {
	XDSAddr      string        // the control plane's ADS address
	API          string        // base URL of its HTTP API (port discovery, /metrics)
	Service      string        // a proxyless gRPC service of the services file
	Clients      int           // gRPC xDS clients to connect
	Rounds       int           // new endpoints to measure
	Timeout      time.Duration // per phase: how long to wait for every client
	ConnectBatch int           // clients connected at a time
	Pause        time.Duration // quiet time before each round
	PID          int           // the control plane's pid, for its peak RSS (0: not read)
	Progress     io.Writer     // progress lines (nil: none)
}

func (c xdsConfig) normalize() (xdsConfig, error) {
	switch {
	case c.Clients < 1:
		return c, usagef("--clients must be at least 1")
	case c.Rounds < 1:
		return c, usagef("--rounds must be at least 1")
	case c.Timeout <= 0:
		return c, usagef("--timeout must be positive")
	case c.Pause < 0:
		return c, usagef("--pause must not be negative")
	case c.Service == "":
		return c, usagef("--service is required")
	}
	if c.ConnectBatch <= 0 {
		c.ConnectBatch = c.Clients
	}
	if err := checkLoopback(c.XDSAddr); err != nil {
		return c, err
	}
	u, err := url.Parse(c.API)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return c, fmt.Errorf("--api %q: want http://HOST:PORT", c.API)
	}
	if u.Port() == "" {
		return c, fmt.Errorf("--api %q: give the port", c.API)
	}
	if err := checkLoopback(u.Host); err != nil {
		return c, err
	}
	c.API = strings.TrimSuffix(c.API, "/")
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

// xdsPhase is one measured step: connecting the clients, one new endpoint,
// or the release of an endpoint. The JSON field names are stable.
type xdsPhase struct {
	Name    string `json:"name"`    // "connect", "round N", "release", "rounds"
	Backend string `json:"backend"` // the endpoint added or released
	Clients int    `json:"clients"` // clients expected to see it
	Seen    int    `json:"seen"`    // clients that did within the timeout
	Missing int    `json:"missing"`
	// APIms is how long the registration (or release) request took.
	APIms float64 `json:"api_ms"`
	// Latency per client, in milliseconds: from the registration request
	// (connect: from the client's Connect) to the backend accepting the
	// client's connection (release: to the connection closing).
	MinMs float64 `json:"min_ms"`
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// DialP50ms and DialP99ms are from the same start to the client's
	// balancer dialing the endpoint: the control plane's part and the
	// client's xDS processing, without the connection's own setup.
	DialP50ms float64 `json:"dial_p50_ms,omitempty"`
	DialP99ms float64 `json:"dial_p99_ms,omitempty"`
	// Seconds is the phase's duration, to the last client or the timeout.
	Seconds float64 `json:"seconds"`
	// CPUs is the control plane's CPU time during the phase (from its
	// process_cpu_seconds_total; 0 when /metrics has none).
	CPUs float64 `json:"control_plane_cpu_s"`
	// PushMs is the control plane's mean push duration in the phase: from
	// the change to every node's snapshot set (0: no push seen).
	PushMs float64 `json:"control_plane_push_ms,omitempty"`
	// BenchCPUs is this process's CPU time in the phase: the clients'
	// xDS processing and the backends' accepts (0 where unknown).
	BenchCPUs float64 `json:"bench_cpu_s"`

	lat  []uint64 // nanoseconds, one per client that saw it
	dial []uint64 // nanoseconds to the dial, likewise
}

// add records one client's arrival, measured from start.
func (p *xdsPhase) add(a arrival, start time.Time) {
	p.lat = append(p.lat, uint64(max(a.accepted.Sub(start), 0)))
	p.dial = append(p.dial, uint64(max(a.dialed.Sub(start), 0)))
}

// xdsReport is the result of an xds run.
type xdsReport struct {
	XDS     string `json:"xds"`
	API     string `json:"api"`
	Service string `json:"service"`
	Clients int    `json:"clients"`
	Rounds  int    `json:"rounds"`

	Phases []xdsPhase `json:"phases"`
	// All is every round's latencies together.
	All xdsPhase `json:"all_rounds"`

	// The control plane's resident memory (process_resident_memory_bytes)
	// before the clients connect, once they are, at the end, and after the
	// clients closed (--pause later); peak from VmHWM when --pid is given.
	// 0: not available.
	RSSBeforeMiB    float64 `json:"control_plane_rss_before_mib"`
	RSSConnectedMiB float64 `json:"control_plane_rss_connected_mib"`
	RSSEndMiB       float64 `json:"control_plane_rss_end_mib"`
	RSSClosedMiB    float64 `json:"control_plane_rss_closed_mib"` // after the clients closed
	PeakRSSMiB      float64 `json:"control_plane_peak_rss_mib,omitempty"`

	BenchPeakRSSMiB float64 `json:"bench_peak_rss_mib,omitempty"`
	BenchCPUUser    float64 `json:"bench_cpu_user_s,omitempty"`
	BenchCPUSys     float64 `json:"bench_cpu_sys_s,omitempty"`
	FDLimit         uint64  `json:"fd_limit,omitempty"`
	Interrupted     bool    `json:"interrupted,omitempty"`
}

// missing is how many client observations failed across all phases.
func (r *xdsReport) missing() int {
	n := 0
	for _, p := range r.Phases {
		n += p.Missing
	}
	return n
}

// finish computes a phase's percentiles from its latencies.
func (p *xdsPhase) finish() {
	slices.Sort(p.lat)
	p.Seen = len(p.lat)
	p.Missing = p.Clients - p.Seen
	ms := func(v uint64) float64 { return round(float64(v)/1e6, 1) }
	p.MinMs = ms(percentileSorted(p.lat, 0))
	p.P50ms = ms(percentileSorted(p.lat, 50))
	p.P90ms = ms(percentileSorted(p.lat, 90))
	p.P99ms = ms(percentileSorted(p.lat, 99))
	if n := len(p.lat); n > 0 {
		p.MaxMs = ms(p.lat[n-1])
	}
	if len(p.dial) > 0 {
		slices.Sort(p.dial)
		p.DialP50ms = ms(percentileSorted(p.dial, 50))
		p.DialP99ms = ms(percentileSorted(p.dial, 99))
	}
}

// trackedConn is a backend's side of one client connection.
type trackedConn struct {
	net.Conn
	accepted time.Time
	key      string       // connKey of the connection, as its client's dialer sees it
	closed   atomic.Int64 // unix nanoseconds of Close (0: open)
}

func (c *trackedConn) Close() error {
	c.closed.CompareAndSwap(0, time.Now().UnixNano())
	return c.Conn.Close()
}

// trackingListener records every connection it accepts.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*trackedConn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, accepted: time.Now(), key: connKey(c.RemoteAddr().String(), c.LocalAddr().String())}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) snapshot() []*trackedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.conns)
}

// xdsBackend is one endpoint of the service: a gRPC server (health only)
// on 127.0.0.1 and its lease in the port registry.
type xdsBackend struct {
	addr   string
	port   int
	lis    *trackingListener
	gs     *grpc.Server
	served chan error
	lease  string // "" until registered, and after the release
}

func startXDSBackend() (*xdsBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &xdsBackend{
		addr:   ln.Addr().String(),
		port:   ln.Addr().(*net.TCPAddr).Port,
		lis:    &trackingListener{Listener: ln},
		gs:     grpc.NewServer(),
		served: make(chan error, 1),
	}
	healthpb.RegisterHealthServer(b.gs, health.NewServer())
	go func() { b.served <- b.gs.Serve(b.lis) }()
	return b, nil
}

func (b *xdsBackend) stop() {
	b.gs.Stop()
	<-b.served
}

// xdsClients are the gRPC channels and who owns which connection.
type xdsClients struct {
	conns  []*grpc.ClientConn
	owners sync.Map // connKey -> connOwner
}

// connOwner is the client that opened a connection, and when its balancer
// started dialing it: the client had the endpoint then.
type connOwner struct {
	client int
	dialed time.Time
}

// connKey names a TCP connection by both ends, client first. The client's
// address alone is not enough: the kernel reuses a local port for
// connections to different destinations.
func connKey(client, server string) string { return client + ">" + server }

// owner returns the client that opened the connection key.
func (cs *xdsClients) owner(key string) (connOwner, bool) {
	v, ok := cs.owners.Load(key)
	if !ok {
		return connOwner{}, false
	}
	return v.(connOwner), true
}

// add creates client i: its own xDS client (bootstrap with node id
// bench-client-NNNN) and a channel to xds:///service, connected at once.
func (cs *xdsClients) add(i int, xdsAddr, service string) error {
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]string{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]string{"id": fmt.Sprintf("bench-client-%04d", i)},
	})
	if err != nil {
		return err
	}
	rb, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return fmt.Errorf("xDS resolver: %w", err)
	}
	var d net.Dialer
	cc, err := grpc.NewClient("xds:///"+service,
		grpc.WithResolvers(rb),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dialed := time.Now()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				cs.owners.Store(connKey(c.LocalAddr().String(), c.RemoteAddr().String()), connOwner{client: i, dialed: dialed})
			}
			return c, err
		}))
	if err != nil {
		return fmt.Errorf("client %d: %w", i, err)
	}
	cs.conns = append(cs.conns, cc)
	cc.Connect()
	return nil
}

// close closes every channel, a few at a time.
func (cs *xdsClients) close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, cc := range cs.conns {
		sem <- struct{}{}
		wg.Go(func() {
			cc.Close()
			<-sem
		})
	}
	wg.Wait()
	cs.conns = nil
}

// xdsPoll is how often a phase looks at the backends' connections. The
// latencies come from the timestamps taken at accept (and close), not from
// the polling.
const xdsPoll = 2 * time.Millisecond

// arrival is when a client's first connection to a backend was dialed and
// accepted.
type arrival struct{ dialed, accepted time.Time }

// waitAccepted waits until each client in want has a connection accepted
// by b, or the timeout, and returns each one's first connection.
func waitAccepted(ctx context.Context, b *xdsBackend, cs *xdsClients, want []int, timeout time.Duration) map[int]arrival {
	wanted := make(map[int]bool, len(want))
	for _, i := range want {
		wanted[i] = true
	}
	seen := map[int]arrival{}
	scanned := 0 // conns attributed so far are a prefix: never rescanned
	var pending []*trackedConn
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(xdsPoll)
	defer tick.Stop()
	for {
		conns := b.lis.snapshot()
		pending = append(pending, conns[scanned:]...)
		scanned = len(conns)
		rest := pending[:0]
		for _, c := range pending {
			o, ok := cs.owner(c.key)
			if !ok {
				rest = append(rest, c) // its dialer has not returned yet
				continue
			}
			if a, dup := seen[o.client]; wanted[o.client] && (!dup || c.accepted.Before(a.accepted)) {
				seen[o.client] = arrival{dialed: o.dialed, accepted: c.accepted}
			}
		}
		pending = rest
		if len(seen) == len(wanted) || time.Now().After(deadline) {
			return seen
		}
		select {
		case <-ctx.Done():
			return seen
		case <-tick.C:
		}
	}
}

// waitClosed waits until every connection to b is closed, or the timeout,
// and returns, per client with connections to b, when its last one closed
// (clients with one still open are left out).
func waitClosed(ctx context.Context, b *xdsBackend, cs *xdsClients, timeout time.Duration) map[int]time.Time {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(xdsPoll)
	defer tick.Stop()
	for {
		open := 0
		for _, c := range b.lis.snapshot() {
			if c.closed.Load() == 0 {
				open++
			}
		}
		if open == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	last := map[int]time.Time{}
	stillOpen := map[int]bool{}
	for _, c := range b.lis.snapshot() {
		o, ok := cs.owner(c.key)
		if !ok {
			continue
		}
		ns := c.closed.Load()
		if ns == 0 {
			stillOpen[o.client] = true
			continue
		}
		if t := time.Unix(0, ns); t.After(last[o.client]) {
			last[o.client] = t
		}
	}
	for i := range stillOpen {
		delete(last, i)
	}
	return last
}

// portsAPI is the control plane's port discovery API and /metrics.
type portsAPI struct {
	base    string
	service string
	hc      *http.Client
}

// register leases b's port for the service and returns the lease id.
func (a *portsAPI) register(ctx context.Context, b *xdsBackend, ttl time.Duration) (string, error) {
	body, _ := json.Marshal(map[string]any{"address": "127.0.0.1", "port": b.port, "ttl": ttl.String()})
	var inst struct {
		ID string `json:"id"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(a.service)+"/instances", body, http.StatusCreated, &inst); err != nil {
		return "", fmt.Errorf("register %s: %w", b.addr, err)
	}
	if inst.ID == "" {
		return "", fmt.Errorf("register %s: the answer has no lease id", b.addr)
	}
	return inst.ID, nil
}

func (a *portsAPI) renew(ctx context.Context, lease string) error {
	return a.do(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(a.service)+"/instances/"+url.PathEscape(lease), nil, http.StatusOK, nil)
}

func (a *portsAPI) release(ctx context.Context, lease string) error {
	return a.do(ctx, http.MethodDelete, "/v1/services/"+url.PathEscape(a.service)+"/instances/"+url.PathEscape(lease), nil, http.StatusNoContent, nil)
}

func (a *portsAPI) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// processMetrics are the control plane's process collector values and its
// push duration histogram's sum and count (gavel_xds_push_duration_seconds:
// from the first change of a burst to every node's snapshot set).
type processMetrics struct {
	rssBytes   float64
	cpuSeconds float64
	pushSum    float64
	pushCount  float64
	ok         bool
}

// metrics reads the process collector's metrics from /metrics.
func (a *portsAPI) metrics(ctx context.Context) (processMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return processMetrics{}, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return processMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return processMetrics{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseProcessMetrics(resp.Body)
}

// parseProcessMetrics reads process_resident_memory_bytes,
// process_cpu_seconds_total and, when there, the push duration's sum and
// count from Prometheus text exposition.
func parseProcessMetrics(r io.Reader) (processMetrics, error) {
	var m processMetrics
	var haveRSS, haveCPU bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "process_resident_memory_bytes":
			dst, haveRSS = &m.rssBytes, true
		case "process_cpu_seconds_total":
			dst, haveCPU = &m.cpuSeconds, true
		case "gavel_xds_push_duration_seconds_sum":
			dst = &m.pushSum
		case "gavel_xds_push_duration_seconds_count":
			dst = &m.pushCount
		default:
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			return m, fmt.Errorf("/metrics: %s has no value", name)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return m, fmt.Errorf("/metrics: %s: %v", name, err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if !haveRSS || !haveCPU {
		return m, errors.New("/metrics has no process_resident_memory_bytes or process_cpu_seconds_total (no process collector)")
	}
	m.ok = true
	return m, nil
}

// peakRSS reads VmHWM (peak resident memory) of a process from
// /proc/<pid>/status, in bytes.
func peakRSS(pid string) (float64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmHWM(f)
}

func parseVmHWM(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM: unexpected %q", rest)
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM: %v", err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmHWM line")
}

func mib(bytes float64) float64 { return round(bytes/(1<<20), 1) }

// xdsLeaseTTL is the TTL of the bench's registrations; they are renewed
// every third of it while the run lasts.
const xdsLeaseTTL = 2 * time.Minute

// runXDS runs the benchmark: backend 0 registered, the clients connected
// to it in batches, then cfg.Rounds new backends each measured until every
// client has connected to it, then the release of backend 0 measured until
// every client has closed its connection to it. A phase in which some
// clients never saw the change counts them as missing; the report is
// returned all the same, with an error naming them.
func runXDS(ctx context.Context, cfg xdsConfig) (rep *xdsReport, err error) {
	cfg, err = cfg.normalize()
	if err != nil {
		return nil, err
	}
	api := &portsAPI{base: cfg.API, service: cfg.Service, hc: &http.Client{Timeout: 10 * time.Second}}
	progress := func(format string, a ...any) { fmt.Fprintf(cfg.Progress, format+"\n", a...) }
	rep = &xdsReport{XDS: cfg.XDSAddr, API: cfg.API, Service: cfg.Service, Clients: cfg.Clients, Rounds: cfg.Rounds}

	// The control plane is there and exports its process metrics.
	// Unexported metrics only cost the memory figures.
	m0, err := api.metrics(ctx)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			return nil, fmt.Errorf("control plane API: %w", err)
		}
		progress("warning: %v; no control plane memory figures", err)
	}
	cpuStart, user0, sys0 := m0, time.Duration(0), time.Duration(0)
	if u, s, ok := processCPU(); ok {
		user0, sys0 = u, s
	}

	// Backends, their leases (renewed in the background) and the clients
	// are undone in reverse order on the way out.
	var (
		mu       sync.Mutex
		backends []*xdsBackend
		clients  = &xdsClients{}
	)
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(xdsLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			var leases []string
			for _, b := range backends {
				if b.lease != "" {
					leases = append(leases, b.lease)
				}
			}
			mu.Unlock()
			for _, l := range leases {
				if err := api.renew(renewCtx, l); err != nil && renewCtx.Err() == nil {
					progress("warning: renew lease %s: %v", l, err)
				}
			}
		}
	}()
	defer func() {
		stopRenew()
		<-renewed
		clients.close()
		if rep != nil {
			// What the control plane keeps once every client is gone.
			time.Sleep(cfg.Pause)
			if m, merr := api.metrics(context.WithoutCancel(ctx)); merr == nil {
				rep.RSSClosedMiB = mib(m.rssBytes)
			}
		}
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, b := range backends {
			if b.lease != "" {
				if rerr := api.release(cleanup, b.lease); rerr != nil {
					progress("warning: release %s: %v", b.addr, rerr)
				}
			}
			b.stop()
		}
	}()

	// newBackend starts a backend and registers it; t0 is taken just
	// before the registration request.
	newBackend := func() (*xdsBackend, time.Time, time.Duration, error) {
		b, err := startXDSBackend()
		if err != nil {
			return nil, time.Time{}, 0, err
		}
		mu.Lock()
		backends = append(backends, b)
		mu.Unlock()
		t0 := time.Now()
		lease, err := api.register(ctx, b, xdsLeaseTTL)
		took := time.Since(t0)
		if err != nil {
			return nil, t0, took, err
		}
		mu.Lock()
		b.lease = lease
		mu.Unlock()
		return b, t0, took, nil
	}
	benchCPU := func() time.Duration {
		u, s, _ := processCPU()
		return u + s
	}
	cpuPhase := func(p *xdsPhase, before processMetrics, benchBefore time.Duration) processMetrics {
		p.BenchCPUs = round((benchCPU() - benchBefore).Seconds(), 2)
		after, err := api.metrics(ctx)
		if err == nil && before.ok {
			p.CPUs = round(after.cpuSeconds-before.cpuSeconds, 2)
			if n := after.pushCount - before.pushCount; n > 0 {
				p.PushMs = round((after.pushSum-before.pushSum)/n*1000, 1)
			}
		}
		return after
	}
	finish := func() {
		rep.Interrupted = ctx.Err() != nil
		if m, err := api.metrics(context.WithoutCancel(ctx)); err == nil {
			rep.RSSEndMiB = mib(m.rssBytes)
		}
		if cfg.PID > 0 {
			if v, err := peakRSS(strconv.Itoa(cfg.PID)); err == nil {
				rep.PeakRSSMiB = mib(v)
			} else {
				progress("warning: --pid %d: %v", cfg.PID, err)
			}
		}
		if v, err := peakRSS("self"); err == nil {
			rep.BenchPeakRSSMiB = mib(v)
		}
		if u, s, ok := processCPU(); ok {
			rep.BenchCPUUser = round((u - user0).Seconds(), 2)
			rep.BenchCPUSys = round((s - sys0).Seconds(), 2)
		}
		var all, dial []uint64
		var pushSum float64
		pushes := 0
		for _, p := range rep.Phases {
			if strings.HasPrefix(p.Name, "round ") {
				all = append(all, p.lat...)
				dial = append(dial, p.dial...)
				rep.All.Clients += p.Clients
				rep.All.Seconds += p.Seconds
				rep.All.CPUs += p.CPUs
				rep.All.BenchCPUs += p.BenchCPUs
				if p.PushMs > 0 {
					pushSum += p.PushMs
					pushes++
				}
			}
		}
		rep.All.Name = "rounds"
		rep.All.lat = all
		rep.All.dial = dial
		rep.All.Seconds = round(rep.All.Seconds, 3)
		rep.All.CPUs = round(rep.All.CPUs, 2)
		rep.All.BenchCPUs = round(rep.All.BenchCPUs, 2)
		if pushes > 0 {
			rep.All.PushMs = round(pushSum/float64(pushes), 1)
		}
		rep.All.finish()
	}
	defer func() {
		if rep != nil {
			finish()
			if err == nil && ctx.Err() == nil {
				if n := rep.missing(); n > 0 {
					err = fmt.Errorf("%d client observations missing: some clients did not see a change within --timeout %s", n, cfg.Timeout)
				}
			}
		}
	}()

	// Backend 0, then the clients, ramped up in batches, each batch
	// waited for until it has connected to backend 0.
	b0, _, took, err := newBackend()
	if err != nil {
		return nil, err
	}
	if m0.ok {
		rep.RSSBeforeMiB = mib(m0.rssBytes)
	}
	connect := xdsPhase{Name: "connect", Backend: b0.addr, Clients: cfg.Clients, APIms: round(took.Seconds()*1000, 1)}
	start := time.Now()
	started := make([]time.Time, cfg.Clients)
	for lo := 0; lo < cfg.Clients && ctx.Err() == nil; lo += cfg.ConnectBatch {
		hi := min(lo+cfg.ConnectBatch, cfg.Clients)
		batch := make([]int, 0, hi-lo)
		for i := lo; i < hi; i++ {
			started[i] = time.Now()
			if err := clients.add(i, cfg.XDSAddr, cfg.Service); err != nil {
				return nil, err
			}
			batch = append(batch, i)
		}
		seen := waitAccepted(ctx, b0, clients, batch, cfg.Timeout)
		for i, a := range seen {
			connect.add(a, started[i])
		}
		progress("connected %d/%d clients (%.1fs)", lo+len(seen), cfg.Clients, time.Since(start).Seconds())
	}
	connect.Seconds = round(time.Since(start).Seconds(), 3)
	m1 := cpuPhase(&connect, cpuStart, user0+sys0)
	if m1.ok {
		rep.RSSConnectedMiB = mib(m1.rssBytes)
	}
	connect.finish()
	rep.Phases = append(rep.Phases, connect)
	if ctx.Err() != nil {
		return rep, nil
	}

	all := make([]int, cfg.Clients)
	for i := range all {
		all[i] = i
	}
	before := m1
	for r := 1; r <= cfg.Rounds && ctx.Err() == nil; r++ {
		select {
		case <-ctx.Done():
			return rep, nil
		case <-time.After(cfg.Pause):
		}
		if m, err := api.metrics(ctx); err == nil {
			before = m
		}
		bench0 := benchCPU()
		b, t0, took, err := newBackend()
		if err != nil {
			return rep, err
		}
		p := xdsPhase{Name: fmt.Sprintf("round %d", r), Backend: b.addr, Clients: cfg.Clients, APIms: round(took.Seconds()*1000, 1)}
		seen := waitAccepted(ctx, b, clients, all, cfg.Timeout)
		p.Seconds = round(time.Since(t0).Seconds(), 3)
		for _, a := range seen {
			p.add(a, t0)
		}
		cpuPhase(&p, before, bench0)
		p.finish()
		rep.Phases = append(rep.Phases, p)
		progress("%s: %d/%d clients saw %s, p99 %.1fms", p.Name, p.Seen, p.Clients, p.Backend, p.P99ms)
	}
	if ctx.Err() != nil {
		return rep, nil
	}

	// The release of backend 0: every client closes its connection to it.
	select {
	case <-ctx.Done():
		return rep, nil
	case <-time.After(cfg.Pause):
	}
	if m, err := api.metrics(ctx); err == nil {
		before = m
	}
	p := xdsPhase{Name: "release", Backend: b0.addr, Clients: cfg.Clients}
	mu.Lock()
	lease := b0.lease
	mu.Unlock()
	bench0 := benchCPU()
	t0 := time.Now()
	if err := api.release(ctx, lease); err != nil {
		return rep, err
	}
	p.APIms = round(time.Since(t0).Seconds()*1000, 1)
	mu.Lock()
	b0.lease = ""
	mu.Unlock()
	gone := waitClosed(ctx, b0, clients, cfg.Timeout)
	p.Seconds = round(time.Since(t0).Seconds(), 3)
	for _, t := range gone {
		p.lat = append(p.lat, uint64(t.Sub(t0)))
	}
	cpuPhase(&p, before, bench0)
	p.finish()
	rep.Phases = append(rep.Phases, p)
	progress("%s: %d/%d clients dropped %s, p99 %.1fms", p.Name, p.Seen, p.Clients, p.Backend, p.P99ms)
	return rep, nil
}

func (r *xdsReport) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// writeTable prints the report for humans.
func (r *xdsReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "control plane  xds %s, api %s, service %s\n", r.XDS, r.API, r.Service)
	fmt.Fprintf(w, "clients        %s, %s\n\n", plural(r.Clients, "proxyless gRPC client"), plural(r.Rounds, "round"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tendpoint\tseen\tmissing\tmin ms\tp50 ms\tp90 ms\tp99 ms\tmax ms\tdial p50\tdial p99\tphase s\tapi ms\tcp push ms\tcp cpu s\tbench cpu s\t")
	row := func(p xdsPhase, api string) {
		dial50, dial99, push := "-", "-", "-"
		if p.PushMs > 0 {
			push = fmt.Sprintf("%.1f", p.PushMs)
		}
		if len(p.dial) > 0 {
			dial50, dial99 = fmt.Sprintf("%.1f", p.DialP50ms), fmt.Sprintf("%.1f", p.DialP99ms)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%.3f\t%s\t%s\t%.2f\t%.2f\t\n",
			p.Name, p.Backend, p.Seen, p.Clients, p.Missing, p.MinMs, p.P50ms, p.P90ms, p.P99ms, p.MaxMs, dial50, dial99, p.Seconds, api, push, p.CPUs, p.BenchCPUs)
	}
	for _, p := range r.Phases {
		row(p, fmt.Sprintf("%.1f", p.APIms))
	}
	if r.All.Clients > 0 {
		all := r.All
		all.Backend = "-"
		row(all, "-")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nper client, from the registration (connect: from the client's Connect; release: from the")
	fmt.Fprintln(w, "release) to the backend accepting its connection (release: the connection closing); dial:")
	fmt.Fprintln(w, "to the client's balancer dialing the endpoint. cp push: the control plane's mean time from")
	fmt.Fprintln(w, "the change to every node's snapshot set (holdoff included); cpu: CPU time in the phase.")
	fmt.Fprintln(w)
	na := func(v float64) string {
		if v == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f MiB", v)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "control plane rss\tbefore %s  connected %s  end %s  clients closed %s\n",
		na(r.RSSBeforeMiB), na(r.RSSConnectedMiB), na(r.RSSEndMiB), na(r.RSSClosedMiB))
	if r.PeakRSSMiB > 0 {
		fmt.Fprintf(tw, "control plane peak rss\t%s (VmHWM)\n", na(r.PeakRSSMiB))
	}
	if r.BenchPeakRSSMiB > 0 {
		fmt.Fprintf(tw, "bench peak rss\t%s\n", na(r.BenchPeakRSSMiB))
	}
	if r.BenchCPUUser > 0 || r.BenchCPUSys > 0 {
		fmt.Fprintf(tw, "bench cpu\tuser %.2fs  sys %.2fs\n", r.BenchCPUUser, r.BenchCPUSys)
	}
	if r.FDLimit > 0 {
		fmt.Fprintf(tw, "bench fd limit\t%d\n", r.FDLimit)
	}
	if r.Interrupted {
		fmt.Fprintf(tw, "note\tinterrupted: partial results\n")
	}
	return tw.Flush()
}

func cmdXDS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("xds", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := xdsConfig{Progress: stderr}
	fs.StringVar(&cfg.XDSAddr, "xds", "127.0.0.1:18000", "the control plane's xDS (ADS) `address` (loopback only)")
	fs.StringVar(&cfg.API, "api", "http://127.0.0.1:8181", "the control plane's HTTP API `URL` (port discovery and /metrics)")
	fs.StringVar(&cfg.Service, "service", "greeter", "a gRPC `service` of the control plane's services file")
	fs.IntVar(&cfg.Clients, "clients", 1000, "proxyless gRPC xDS clients, each with its own ADS stream")
	fs.IntVar(&cfg.Rounds, "rounds", 5, "new endpoints registered and measured, one at a time")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "how long a phase waits for every client")
	fs.IntVar(&cfg.ConnectBatch, "connect-batch", 100, "clients connected at a time (0: all at once)")
	fs.DurationVar(&cfg.Pause, "pause", time.Second, "quiet time before each round")
	fs.IntVar(&cfg.PID, "pid", 0, "the control plane's `pid`: report its peak RSS (VmHWM from /proc)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	limit, err := raiseFDLimit()
	if err != nil {
		fmt.Fprintf(stderr, "gavel-bench xds: warning: raising the file descriptor limit: %v\n", err)
	}
	if need := uint64(cfg.Clients)*uint64(2*cfg.Rounds+4) + 64; limit > 0 && limit < need {
		fmt.Fprintf(stderr, "gavel-bench xds: warning: file descriptor limit %d is below the ~%d this run needs\n", limit, need)
	}
	rep, err := runXDS(ctx, cfg)
	if rep == nil {
		return err
	}
	rep.FDLimit = limit
	if rep.Interrupted {
		fmt.Fprintln(stderr, "gavel-bench xds: interrupted, partial results")
	}
	var werr error
	if *asJSON {
		werr = rep.writeJSON(stdout)
	} else {
		werr = rep.writeTable(stdout)
	}
	return errors.Join(err, werr)
}
