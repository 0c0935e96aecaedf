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
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and gRPC-Go's xDS client

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
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		inst, err := f.reg.Register(t.Context(), ports.Request{Service: "greeter", Address: "127.0.0.1", Port: p})
		if err != nil {
			t.Fatal(err)
		}
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

// startBackend runs a gRPC server with the health service on 127.0.0.1:0.
// The client tells backends apart by the peer address of each RPC.
func startBackend(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, health.NewServer())
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

// expect asks the client to send RPCs until one batch reaches exactly the
// backends want (bounded), and returns its next batch's count per backend.
func (c *proxylessClient) expect(want []string) map[string]int {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.stdin, "expect %s\n", strings.Join(want, ",")); err != nil {
		c.t.Fatal(err)
	}
	select {
	case line, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("proxyless client exited\nstderr:\n%s", c.stderrText())
		}
		counts, err := parseCounts(line)
		if err != nil {
			c.t.Fatalf("%v\nstderr:\n%s", err, c.stderrText())
		}
		return counts
	case <-time.After(30 * time.Second):
		c.t.Fatalf("no answer from the proxyless client\nstderr:\n%s", c.stderrText())
		return nil
	}
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
// process TestProxylessGRPCClient starts. It dials xds:///greeter and, for
// each "expect a,b,c" line on stdin, sends batches of RPCs until one batch
// reaches exactly those backends (within 10 s: the client applies new
// configuration shortly after it ACKs it), then answers with the count per
// backend of one more batch.
func TestProxylessClientHelper(t *testing.T) {
	if os.Getenv(proxylessChildEnv) == "" {
		return
	}
	conn, err := grpc.NewClient("xds:///greeter", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Printf("RESULT fail dial: %v\n", err)
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

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

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		arg, ok := strings.CutPrefix(sc.Text(), "expect ")
		if !ok {
			fmt.Printf("RESULT fail unknown command %q\n", sc.Text())
			continue
		}
		want := strings.Split(arg, ",")
		slices.Sort(want)
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
			fmt.Printf("RESULT fail backends did not converge to %v within 10s: last batch %v, error %v\n", want, last, lastErr)
			continue
		}
		counts, err := batch()
		if err != nil {
			fmt.Printf("RESULT fail rpc: %v\n", err)
			continue
		}
		var b strings.Builder
		b.WriteString("ok")
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			fmt.Fprintf(&b, " %s=%d", k, counts[k])
		}
		fmt.Println("RESULT " + b.String())
	}
	// The xDS client's goroutines wind down after the channel closes; exit
	// here rather than have TestMain's leak check wait for them.
	conn.Close()
	os.Exit(0)
}
