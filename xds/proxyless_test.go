package xds

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and gRPC-Go's xDS client
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds/ports"
)

// proxylessChildEnv makes TestProxylessClientHelper act as the proxyless
// client. gRPC-Go reads its xDS bootstrap (GRPC_XDS_BOOTSTRAP_CONFIG) from
// the environment at package init, so the client must run in a process
// started with it: the test binary itself, re-executed.
const proxylessChildEnv = "GAVEL_TEST_PROXYLESS_CHILD"

// proxylessBatch is how many RPCs the client measures a distribution with.
const proxylessBatch = 60

// TestProxylessGRPCClient proves that gRPC-Go's own xDS client takes its
// configuration from gavel's control plane: it subscribes to LDS, RDS, CDS
// and EDS for xds:///greeter, ACKs, and round-robins its RPCs across the
// backends registered in the port registry; when one is released, the
// client stops sending to it.
func TestProxylessGRPCClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ir := envoy.IR{Services: []envoy.Service{{
		Name:     "greeter",
		Protocol: envoy.ProtocolGRPC,
		Listener: envoy.Listener{Port: 10000},
	}}}
	f := newFixture(t, ir)

	// Three real gRPC backends, each registered in the port registry.
	var backends []string
	leases := map[string]string{}
	for range 3 {
		addr := startBackend(t)
		inst := registerBackend(t, f.reg, "greeter", addr)
		backends = append(backends, addr)
		leases[addr] = inst.ID
	}

	c := startProxylessClient(t, f.addr)

	counts := c.expect(backends)
	for _, b := range backends {
		if counts[b] == 0 {
			t.Errorf("backend %s got no RPCs: %v", b, counts)
		}
	}
	if total(counts) != proxylessBatch {
		t.Errorf("%d RPCs answered, want %d: %v", total(counts), proxylessBatch, counts)
	}
	t.Logf("all backends: %v", counts)

	// Release one instance: the controller pushes a new EDS assignment and
	// the client stops sending to the released backend.
	gone := backends[0]
	if err := f.reg.Release(t.Context(), "greeter", leases[gone]); err != nil {
		t.Fatal(err)
	}
	counts = c.expect(backends[1:])
	if counts[gone] != 0 {
		t.Errorf("released backend %s still got %d RPCs: %v", gone, counts[gone], counts)
	}
	for _, b := range backends[1:] {
		if counts[b] == 0 {
			t.Errorf("backend %s got no RPCs after the release: %v", b, counts)
		}
	}
	t.Logf("after releasing %s: %v", gone, counts)

	// The node connected as a proxyless client and was given the
	// proxyless snapshot.
	snap, err := f.ctrl.Snapshot("proxyless-1")
	if err != nil {
		t.Fatalf("no snapshot for the proxyless node: %v", err)
	}
	if _, ok := snap.GetResources("type.googleapis.com/envoy.config.listener.v3.Listener")["greeter"]; !ok {
		t.Error("the proxyless node's snapshot has no listener greeter")
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// startBackend runs a gRPC server with the health service (and whatever
// register adds) on 127.0.0.1:0. The client tells backends apart by the
// peer address of each RPC.
func startBackend(t *testing.T, register ...func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, health.NewServer())
	for _, r := range register {
		r(g)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("backend Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// proxylessClient drives the child process over its stdin and stdout.
type proxylessClient struct {
	t      *testing.T
	stdin  io.Writer
	lines  chan string
	stderr *lockedWriter
}

// lockedWriter collects the child's stderr, written by exec's copying
// goroutine and read by the test.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func startProxylessClient(t *testing.T, xdsAddr string) *proxylessClient {
	t.Helper()
	bootstrap := fmt.Sprintf(`{"xds_servers":[{"server_uri":%q,"channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],"node":{"id":"proxyless-1"}}`, xdsAddr)
	cmd := exec.Command(os.Args[0], "-test.run=^TestProxylessClientHelper$", "-test.v")
	cmd.Env = append(os.Environ(), proxylessChildEnv+"=1", "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedWriter{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &proxylessClient{t: t, stdin: stdin, lines: make(chan string, 16), stderr: stderr}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
				c.lines <- line
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the child exits at EOF
		exited := make(chan error, 1)
		go func() { <-done; exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("proxyless client: %v\nstderr:\n%s", err, c.stderrText())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("proxyless client did not exit\nstderr:\n%s", c.stderrText())
		}
	})
	return c
}

func (c *proxylessClient) stderrText() string { return c.stderr.String() }

// expect asks the client to send RPCs to xds:///greeter until one batch
// reaches exactly the backends want (bounded), and returns its next batch's
// count per backend.
func (c *proxylessClient) expect(want []string) map[string]int {
	c.t.Helper()
	return c.expectOn("greeter", want)
}

// expectOn is expect for the xds:///target channel.
func (c *proxylessClient) expectOn(target string, want []string) map[string]int {
	c.t.Helper()
	counts, err := parseCounts(c.send(fmt.Sprintf("expect %s %s", strings.Join(want, ","), target)))
	if err != nil {
		c.t.Fatalf("%v\nstderr:\n%s", err, c.stderrText())
	}
	return counts
}

// send writes one command to the client and returns its answer (the
// RESULT line without the prefix).
func (c *proxylessClient) send(cmd string) string {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		c.t.Fatal(err)
	}
	select {
	case line, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("proxyless client exited\nstderr:\n%s", c.stderrText())
		}
		return line
	case <-time.After(30 * time.Second):
		c.t.Fatalf("no answer to %q from the proxyless client\nstderr:\n%s", cmd, c.stderrText())
		return ""
	}
}

// rpc sends a command answered with "rpc <code> <detail>" and returns the
// RPC's status code and the detail (the peer on success, else the message).
func (c *proxylessClient) rpc(cmd string) (codes.Code, string) {
	c.t.Helper()
	line := c.send(cmd)
	rest, ok := strings.CutPrefix(line, "rpc ")
	if !ok {
		c.t.Fatalf("%q: proxyless client: %s\nstderr:\n%s", cmd, line, c.stderrText())
	}
	n, detail, _ := strings.Cut(rest, " ")
	code, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		c.t.Fatalf("%q: proxyless client: bad code in %q", cmd, line)
	}
	return codes.Code(code), detail
}

// parseCounts reads "ok addr=n addr=n ..." (or "fail reason").
func parseCounts(line string) (map[string]int, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "ok" {
		return nil, fmt.Errorf("proxyless client: %s", line)
	}
	out := map[string]int{}
	for _, f := range fields[1:] {
		addr, n, ok := strings.Cut(f, "=")
		v, err := strconv.Atoi(n)
		if !ok || err != nil {
			return nil, fmt.Errorf("proxyless client: bad count %q", f)
		}
		out[addr] = v
	}
	return out, nil
}

// TestProxylessClientHelper is the proxyless client, run only in the child
// process the proxyless tests start. It dials xds:///greeter (and, on
// demand, other xds:/// targets, one channel each) and answers each line on
// stdin with one "RESULT ..." line on stdout:
//
//   - "expect a,b,c [target]": sends batches of health checks to target
//     (default greeter) until one batch reaches exactly those backends
//     (within 10 s: the client applies new configuration shortly after it
//     ACKs it), then answers "ok addr=n ..." with the count per backend of
//     one more batch.
//   - "check target timeout": one health check; answers "rpc code peer|msg".
//   - "block timeout": one Blocker.Block RPC to greeter; answers
//     "rpc code msg".
//   - "block-start": starts a Blocker.Block RPC to greeter in the
//     background (timeout 30 s) and answers "started" at once;
//     "block-wait" waits for it and answers "rpc code msg".
func TestProxylessClientHelper(t *testing.T) {
	if os.Getenv(proxylessChildEnv) == "" {
		return
	}
	conns := map[string]*grpc.ClientConn{}
	connFor := func(target string) (*grpc.ClientConn, error) {
		if c, ok := conns[target]; ok {
			return c, nil
		}
		c, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		conns[target] = c
		return c, nil
	}
	if _, err := connFor("greeter"); err != nil {
		fmt.Printf("RESULT fail dial: %v\n", err)
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	var blocked chan error
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "expect":
			addrs, target, _ := strings.Cut(arg, " ")
			if target == "" {
				target = "greeter"
			}
			conn, err := connFor(target)
			if err != nil {
				fmt.Printf("RESULT fail dial %s: %v\n", target, err)
				continue
			}
			fmt.Println("RESULT " + proxylessExpect(healthpb.NewHealthClient(conn), strings.Split(addrs, ",")))
		case "check":
			target, timeout, _ := strings.Cut(arg, " ")
			d, err := time.ParseDuration(timeout)
			if err != nil {
				fmt.Printf("RESULT fail bad timeout %q\n", timeout)
				continue
			}
			conn, err := connFor(target)
			if err != nil {
				fmt.Printf("RESULT fail dial %s: %v\n", target, err)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			var p peer.Peer
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p))
			cancel()
			if err == nil {
				fmt.Printf("RESULT rpc %d %s\n", codes.OK, p.Addr)
			} else {
				fmt.Println("RESULT " + rpcResult(err))
			}
		case "block":
			d, err := time.ParseDuration(arg)
			if err != nil {
				fmt.Printf("RESULT fail bad timeout %q\n", arg)
				continue
			}
			fmt.Println("RESULT " + rpcResult(callBlock(conns["greeter"], d)))
		case "block-start":
			blocked = make(chan error, 1)
			go func(ch chan error) { ch <- callBlock(conns["greeter"], 30*time.Second) }(blocked)
			fmt.Println("RESULT started")
		case "block-wait":
			if blocked == nil {
				fmt.Println("RESULT fail no block-start")
				continue
			}
			fmt.Println("RESULT " + rpcResult(<-blocked))
			blocked = nil
		default:
			fmt.Printf("RESULT fail unknown command %q\n", sc.Text())
		}
	}
	// The xDS client's goroutines wind down after the channels close; exit
	// here rather than have TestMain's leak check wait for them.
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}

// proxylessExpect is the child's "expect": see TestProxylessClientHelper.
func proxylessExpect(client healthpb.HealthClient, want []string) string {
	slices.Sort(want)
	batch := func() (map[string]int, error) {
		counts := map[string]int{}
		for range proxylessBatch {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var p peer.Peer
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p))
			cancel()
			if err != nil {
				return counts, err
			}
			counts[p.Addr.String()]++
		}
		return counts, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	var last map[string]int
	var lastErr error
	converged := false
	for time.Now().Before(deadline) {
		last, lastErr = batch()
		if lastErr == nil && slices.Equal(slices.Sorted(maps.Keys(last)), want) {
			converged = true
			break
		}
	}
	if !converged {
		return fmt.Sprintf("fail backends did not converge to %v within 10s: last batch %v, error %v", want, last, lastErr)
	}
	counts, err := batch()
	if err != nil {
		return fmt.Sprintf("fail rpc: %v", err)
	}
	var b strings.Builder
	b.WriteString("ok")
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, " %s=%d", k, counts[k])
	}
	return b.String()
}

// rpcResult is "rpc <numeric code> <message>" for an RPC's error (nil: OK).
func rpcResult(err error) string {
	st := status.Convert(err)
	return strings.TrimSpace(fmt.Sprintf("rpc %d %s", st.Code(), strings.ReplaceAll(st.Message(), "\n", " ")))
}

// blockMethod is the one method of the hand-written gavel.test.Blocker
// service: a unary RPC (google.protobuf.Empty in and out) whose handler
// holds every call until the test releases it.
const blockMethod = "/gavel.test.Blocker/Block"

// blocker is the backend side of gavel.test.Blocker.
type blocker struct {
	calls       atomic.Int32  // Block calls the backend received
	entered     chan struct{} // one send per call (buffered, never blocks)
	release     chan struct{} // closed: every call, held or later, returns
	releaseOnce sync.Once
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (b *blocker) unblock() { b.releaseOnce.Do(func() { close(b.release) }) }

func (b *blocker) register(g *grpc.Server) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "gavel.test.Blocker",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Block", Handler: b.handle}},
	}, b)
}

func (b *blocker) handle(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	if err := dec(new(emptypb.Empty)); err != nil {
		return nil, err
	}
	b.calls.Add(1)
	select {
	case b.entered <- struct{}{}:
	default:
	}
	select {
	case <-b.release:
		return &emptypb.Empty{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// callBlock is one Blocker.Block RPC on conn (the child side).
func callBlock(conn *grpc.ClientConn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return conn.Invoke(ctx, blockMethod, &emptypb.Empty{}, new(emptypb.Empty), grpc.WaitForReady(true))
}

// TestProxylessCircuitBreaker proves that gRPC-Go's xDS client enforces the
// circuit breaker gavel puts on a service's cluster (CDS
// circuit_breakers.thresholds[DEFAULT].max_requests): with MaxRequests 1
// and one RPC held by the backend, a second concurrent RPC is dropped by
// the client at once with Unavailable and never reaches the backend; once
// the first returns, RPCs go through again.
func TestProxylessCircuitBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ir := envoy.IR{Services: []envoy.Service{{
		Name:       "greeter",
		Protocol:   envoy.ProtocolGRPC,
		Listener:   envoy.Listener{Port: 10000},
		Resilience: envoy.Resilience{CircuitBreakers: envoy.CircuitBreakers{MaxRequests: 1}},
	}}}
	f := newFixture(t, ir)

	b := newBlocker()
	addr := startBackend(t, b.register)
	t.Cleanup(b.unblock) // runs before the backend stops
	registerBackend(t, f.reg, "greeter", addr)

	c := startProxylessClient(t, f.addr)
	// The client has the configuration and reaches the backend (health
	// checks run one at a time, so the breaker never trips on them).
	if counts := c.expect([]string{addr}); counts[addr] != proxylessBatch {
		t.Fatalf("sequential RPCs: %v, want all %d on %s", counts, proxylessBatch, addr)
	}

	// One RPC in flight, held by the backend.
	if got := c.send("block-start"); got != "started" {
		t.Fatalf("block-start: %s\nstderr:\n%s", got, c.stderrText())
	}
	select {
	case <-b.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("the first Block RPC did not reach the backend\nstderr:\n%s", c.stderrText())
	}

	// A second one is over max_requests: dropped by the client, fast.
	start := time.Now()
	code, msg := c.rpc("block 5s")
	elapsed := time.Since(start)
	if code != codes.Unavailable {
		t.Fatalf("second concurrent RPC: %v %q, want Unavailable (circuit breaker)", code, msg)
	}
	if !strings.Contains(msg, "max requests 1 exceeded") {
		t.Errorf("second concurrent RPC: message %q does not name the breaker", msg)
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("the backend received %d Block calls, want 1: the dropped RPC must not reach it", n)
	}
	if elapsed > 3*time.Second {
		t.Errorf("the dropped RPC took %v: it should fail fast", elapsed)
	}
	t.Logf("second RPC dropped in %v: %v %s", elapsed, code, msg)

	// Release the first: it succeeds, and so does the next one.
	b.unblock()
	if code, msg := c.rpc("block-wait"); code != codes.OK {
		t.Fatalf("the held RPC: %v %s, want OK", code, msg)
	}
	// The client ends the first request's count when its RPC is done,
	// which is before block-wait answers; still, poll (bounded) rather than
	// rely on that ordering.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, msg := c.rpc("block 5s")
		if code == codes.OK {
			break
		}
		if code != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("third RPC after the release: %v %s, want OK", code, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("the backend received %d Block calls, want 2", n)
	}
}

// TestProxylessConfigChange proves that a running proxyless client picks up
// a new IR set with Controller.SetIR, without a restart or a new channel:
// with one RPC held by the backend, a concurrent health check goes through
// under the default circuit breakers; after SetIR lowers max_requests to
// 1 the same channel drops it with Unavailable, and after SetIR restores
// the defaults it goes through again.
func TestProxylessConfigChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	greeter := envoy.Service{Name: "greeter", Protocol: envoy.ProtocolGRPC, Listener: envoy.Listener{Port: 10000}}
	withMaxRequests := func(n uint32) envoy.IR {
		s := greeter
		s.Resilience.CircuitBreakers.MaxRequests = n
		return envoy.IR{Services: []envoy.Service{s}}
	}
	f := newFixture(t, withMaxRequests(0)) // Envoy's default, 1024

	b := newBlocker()
	addr := startBackend(t, b.register)
	t.Cleanup(b.unblock) // runs before the backend stops
	registerBackend(t, f.reg, "greeter", addr)

	c := startProxylessClient(t, f.addr)
	if counts := c.expect([]string{addr}); counts[addr] != proxylessBatch {
		t.Fatalf("greeter: %v, want all %d on %s", counts, proxylessBatch, addr)
	}
	if got := c.send("block-start"); got != "started" {
		t.Fatalf("block-start: %s\nstderr:\n%s", got, c.stderrText())
	}
	select {
	case <-b.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("the Block RPC did not reach the backend\nstderr:\n%s", c.stderrText())
	}

	// awaitCheck polls (bounded) until a health check, concurrent with the
	// held RPC, ends with code.
	awaitCheck := func(stage string, want codes.Code) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, detail := c.rpc("check greeter 2s")
			if code == want {
				return detail
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: health check: %v %s, want %v within 10s", stage, code, detail, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Default breakers: a second concurrent RPC goes through.
	if code, detail := c.rpc("check greeter 2s"); code != codes.OK {
		t.Fatalf("concurrent health check under the default breakers: %v %s", code, detail)
	}

	v := f.ctrl.Version()
	f.ctrl.SetIR(withMaxRequests(1))
	msg := awaitCheck("after SetIR max_requests 1", codes.Unavailable)
	if !strings.Contains(msg, "max requests 1 exceeded") {
		t.Errorf("after SetIR max_requests 1: message %q does not name the breaker", msg)
	}
	if nv := f.ctrl.Version(); nv <= v {
		t.Errorf("snapshot version %d after SetIR, was %d", nv, v)
	}
	t.Logf("after SetIR max_requests 1: Unavailable %s", msg)

	f.ctrl.SetIR(withMaxRequests(0))
	awaitCheck("after SetIR back to the defaults", codes.OK)

	b.unblock()
	if code, msg := c.rpc("block-wait"); code != codes.OK {
		t.Fatalf("the held RPC: %v %s, want OK", code, msg)
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("the backend received %d Block calls, want 1", n)
	}
}

// TestProxylessAddService proves that a running proxyless client reaches a
// service SetIR adds: greeter2 (whose instance is registered from the start
// but ignored while the IR does not declare it) cannot be reached until
// SetIR adds it, and then the same client process reaches it over
// xds:///greeter2 while xds:///greeter keeps working. A proxyless client
// asks only for what its channels use (LDS greeter, CDS service_greeter,
// ...): an ADS-mode snapshot cache never answers such a subset once the
// snapshot holds two services, which is why gRPC clients have a cache of
// their own (server.go).
func TestProxylessAddService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	greeter := envoy.Service{Name: "greeter", Protocol: envoy.ProtocolGRPC, Listener: envoy.Listener{Port: 10000}}
	f := newFixture(t, envoy.IR{Services: []envoy.Service{greeter}})

	register := func(service string) string {
		addr := startBackend(t)
		registerBackend(t, f.reg, service, addr)
		return addr
	}
	one := register("greeter")
	two := register("greeter2")

	c := startProxylessClient(t, f.addr)
	if counts := c.expect([]string{one}); counts[one] != proxylessBatch {
		t.Fatalf("greeter: %v, want all %d on %s", counts, proxylessBatch, one)
	}

	// greeter2 is not in the IR: the client finds no listener for it.
	if code, detail := c.rpc("check greeter2 1s"); code == codes.OK {
		t.Fatalf("greeter2 answered (%s) before the IR declared it", detail)
	}

	f.ctrl.SetIR(envoy.IR{Services: []envoy.Service{greeter, {
		Name: "greeter2", Protocol: envoy.ProtocolGRPC, Listener: envoy.Listener{Port: 10001},
	}}})
	counts := c.expectOn("greeter2", []string{two})
	if counts[two] != proxylessBatch {
		t.Errorf("greeter2 after SetIR: %v, want all %d on %s", counts, proxylessBatch, two)
	}
	t.Logf("greeter2 after SetIR: %v", counts)
	// The running channel to greeter is unaffected.
	if counts := c.expect([]string{one}); counts[one] != proxylessBatch {
		t.Errorf("greeter after SetIR: %v, want all %d on %s", counts, proxylessBatch, one)
	}
}

// registerBackend registers the backend at addr (127.0.0.1:port) as an
// instance of service.
func registerBackend(t *testing.T, reg ports.Registry, service, addr string) ports.Instance {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	inst, err := reg.Register(t.Context(), ports.Request{Service: service, Address: "127.0.0.1", Port: p})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}
