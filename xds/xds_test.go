package xds

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds/ports"
)

// wait bounds every wait for something the test expects: a failure bound,
// never a pause.
const wait = 5 * time.Second

func testIR() envoy.IR {
	return envoy.IR{Services: []envoy.Service{{
		Name:     "echo",
		Listener: envoy.Listener{Port: 10000},
		Routes:   []envoy.Route{{Name: "all", PathPrefix: "/"}},
	}}}
}

type fixture struct {
	srv  *Server
	ctrl *Controller
	reg  *ports.Memory
	addr string
}

// newFixture runs a controller, a registry and a real gRPC xDS server on
// 127.0.0.1:0 until the test ends.
func newFixture(t *testing.T, ir envoy.IR) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := NewServer(ctx, ServerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reg := ports.NewMemory(ports.Options{})
	ctrl := NewController(srv, reg, ControllerOptions{IR: ir, Holdoff: time.Millisecond, Logger: log})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(GRPCServerOptions()...)
	srv.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	ran := make(chan error, 1)
	go func() { ran <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("grpc Serve: %v", err)
		}
		if err := <-ran; err != nil {
			t.Errorf("controller Run: %v", err)
		}
	})
	return &fixture{srv: srv, ctrl: ctrl, reg: reg, addr: lis.Addr().String()}
}

// adsClient speaks ADS (state of the world) as Envoy does: one stream, a
// node on the first request, every response ACKed or NACKed with its
// nonce and the names the client subscribes to.
type adsClient struct {
	t        *testing.T
	node     string
	stream   discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	recv     chan *discovery.DiscoveryResponse
	sentNode bool
	names    map[string][]string // subscribed names per type (nil: wildcard)
	acked    map[string]string   // last ACKed version per type
}

func (f *fixture) connect(t *testing.T, node string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{
		t: t, node: node, stream: stream,
		recv:  make(chan *discovery.DiscoveryResponse, 64),
		names: map[string][]string{},
		acked: map[string]string{},
	}
	go func() {
		defer close(c.recv)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case c.recv <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return c
}

func (c *adsClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	if !c.sentNode {
		req.Node = &core.Node{Id: c.node, Cluster: "test"}
		c.sentNode = true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send %s: %v", req.GetTypeUrl(), err)
	}
}

// subscribe asks for typeURL: names, or every resource when names is nil.
func (c *adsClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.names[typeURL] = names
	c.send(&discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, VersionInfo: c.acked[typeURL]})
}

func (c *adsClient) ack(resp *discovery.DiscoveryResponse) {
	c.t.Helper()
	c.acked[resp.GetTypeUrl()] = resp.GetVersionInfo()
	c.send(&discovery.DiscoveryRequest{
		TypeUrl:       resp.GetTypeUrl(),
		ResourceNames: c.names[resp.GetTypeUrl()],
		VersionInfo:   resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(),
	})
}

// nack rejects resp as Envoy does: the version it last ACKed, the nonce of
// the rejected response and an error detail.
func (c *adsClient) nack(resp *discovery.DiscoveryResponse, msg string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{
		TypeUrl:       resp.GetTypeUrl(),
		ResourceNames: c.names[resp.GetTypeUrl()],
		VersionInfo:   c.acked[resp.GetTypeUrl()],
		ResponseNonce: resp.GetNonce(),
		ErrorDetail:   &status.Status{Code: 3, Message: msg},
	})
}

// next returns the next response, failing the test if none comes in time.
func (c *adsClient) next() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case resp, ok := <-c.recv:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return resp
	case <-time.After(wait):
		c.t.Fatalf("no response within %v", wait)
		return nil
	}
}

// expect receives the next response and checks its type.
func (c *adsClient) expect(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	resp := c.next()
	if resp.GetTypeUrl() != typeURL {
		c.t.Fatalf("got a %s response (version %s), want %s", resp.GetTypeUrl(), resp.GetVersionInfo(), typeURL)
	}
	return resp
}

// awaitVersion receives responses, ACKing them, until every subscribed
// type has arrived at version; any other version fails the test.
func (c *adsClient) awaitVersion(version string) map[string]*discovery.DiscoveryResponse {
	c.t.Helper()
	got := map[string]*discovery.DiscoveryResponse{}
	for len(got) < len(c.names) {
		resp := c.next()
		if resp.GetVersionInfo() != version {
			c.t.Fatalf("got %s version %q, want version %q", resp.GetTypeUrl(), resp.GetVersionInfo(), version)
		}
		got[resp.GetTypeUrl()] = resp
		c.ack(resp)
	}
	return got
}

func unpack[T proto.Message](t *testing.T, resp *discovery.DiscoveryResponse) []T {
	t.Helper()
	var out []T
	for _, a := range resp.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		v, ok := m.(T)
		if !ok {
			t.Fatalf("%s response holds a %T", resp.GetTypeUrl(), m)
		}
		out = append(out, v)
	}
	return out
}

// routeNames are the RDS names the listeners' HTTP connection managers use.
func routeNames(t *testing.T, ls []*listenerv3.Listener) []string {
	t.Helper()
	var names []string
	for _, l := range ls {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m, err := f.GetTypedConfig().UnmarshalNew()
				if err != nil {
					t.Fatal(err)
				}
				if hcm, ok := m.(*hcmv3.HttpConnectionManager); ok {
					names = append(names, hcm.GetRds().GetRouteConfigName())
				}
			}
		}
	}
	return names
}

// edsNames are the EDS names the clusters ask for.
func edsNames(cs []*clusterv3.Cluster) []string {
	var names []string
	for _, c := range cs {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		n := c.GetEdsClusterConfig().GetServiceName()
		if n == "" {
			n = c.GetName()
		}
		names = append(names, n)
	}
	return names
}

func endpointsOf(t *testing.T, resp *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, cla := range unpack[*endpointv3.ClusterLoadAssignment](t, resp) {
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
			}
		}
	}
	return out
}

// handshake runs the ADS exchange of test (a) and returns the client with
// CDS, LDS, RDS and EDS subscribed and ACKed at version "1".
func handshake(t *testing.T, f *fixture, node string) *adsClient {
	t.Helper()
	c := f.connect(t, node)

	c.subscribe(resourcev3.ClusterType)
	cds := c.expect(resourcev3.ClusterType)
	if v, err := strconv.Atoi(cds.GetVersionInfo()); err != nil || v < 1 {
		t.Fatalf("CDS version %q, want a counter >= 1", cds.GetVersionInfo())
	}
	version := cds.GetVersionInfo()
	clusters := unpack[*clusterv3.Cluster](t, cds)
	if len(clusters) != 1 || clusters[0].GetName() != "service_echo" {
		t.Fatalf("clusters %v, want service_echo", clusters)
	}
	c.ack(cds)

	c.subscribe(resourcev3.ListenerType)
	lds := c.expect(resourcev3.ListenerType)
	if lds.GetVersionInfo() != version {
		t.Fatalf("LDS version %q, want %q", lds.GetVersionInfo(), version)
	}
	listeners := unpack[*listenerv3.Listener](t, lds)
	if len(listeners) != 1 || listeners[0].GetName() != "ingress_echo" {
		t.Fatalf("listeners %v, want ingress_echo", listeners)
	}
	c.ack(lds)

	rn := routeNames(t, listeners)
	if len(rn) == 0 {
		t.Fatal("the listener names no route configuration")
	}
	c.subscribe(resourcev3.RouteType, rn...)
	rds := c.expect(resourcev3.RouteType)
	rcs := unpack[*routev3.RouteConfiguration](t, rds)
	if len(rcs) != len(rn) || rcs[0].GetName() != rn[0] {
		t.Fatalf("route configurations %v, want %v", rcs, rn)
	}
	c.ack(rds)

	en := edsNames(clusters)
	c.subscribe(resourcev3.EndpointType, en...)
	eds := c.expect(resourcev3.EndpointType)
	clas := unpack[*endpointv3.ClusterLoadAssignment](t, eds)
	if len(clas) != 1 || clas[0].GetClusterName() != en[0] {
		t.Fatalf("load assignments %v, want %v", clas, en)
	}
	c.ack(eds)
	return c
}

// awaitCondition polls cond until it holds, failing the test after wait.
// Used only where nothing can be received: the state of the cache.
func awaitCondition(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestADSHandshake(t *testing.T) {
	f := newFixture(t, testIR())
	handshake(t, f, "node-a")
	if got := value(t, f.srv.metrics.connectedNodes); got != 1 {
		t.Errorf("gavel_xds_connected_nodes = %v, want 1", got)
	}
	if got := value(t, f.srv.metrics.snapshotVersion); got < 1 {
		t.Errorf("gavel_xds_snapshot_version = %v, want >= 1", got)
	}
}

func TestRegistryChangesReachEDS(t *testing.T) {
	f := newFixture(t, testIR())
	c := handshake(t, f, "node-b")
	v := f.ctrl.Version()

	inst, err := f.reg.Register(t.Context(), ports.Request{Service: "echo", Address: "127.0.0.1", Port: 18081})
	if err != nil {
		t.Fatal(err)
	}
	got := c.awaitVersion(strconv.FormatUint(v+1, 10))
	if eps := endpointsOf(t, got[resourcev3.EndpointType]); !slices.Equal(eps, []string{"127.0.0.1:18081"}) {
		t.Fatalf("EDS endpoints after register = %v, want [127.0.0.1:18081]", eps)
	}

	if err := f.reg.Release(t.Context(), "echo", inst.ID); err != nil {
		t.Fatal(err)
	}
	got = c.awaitVersion(strconv.FormatUint(v+2, 10))
	if eps := endpointsOf(t, got[resourcev3.EndpointType]); len(eps) != 0 {
		t.Fatalf("EDS endpoints after release = %v, want none", eps)
	}
}

func TestNACKIsNotAnsweredWithTheSameVersion(t *testing.T) {
	f := newFixture(t, testIR())
	const node = "node-c"
	c := handshake(t, f, node)
	v := f.ctrl.Version()

	inst, err := f.reg.Register(t.Context(), ports.Request{Service: "echo", Address: "127.0.0.1", Port: 18082})
	if err != nil {
		t.Fatal(err)
	}
	rejected := strconv.FormatUint(v+1, 10)
	for range 4 { // one response per subscribed type
		resp := c.next()
		if resp.GetVersionInfo() != rejected {
			t.Fatalf("got %s version %q, want %q", resp.GetTypeUrl(), resp.GetVersionInfo(), rejected)
		}
		if resp.GetTypeUrl() == resourcev3.EndpointType {
			c.nack(resp, "endpoint rejected by the test")
		} else {
			c.ack(resp)
		}
	}

	// After the NACK the cache must hold an open watch for every type,
	// EDS included; had it answered the NACK with the rejected snapshot,
	// the EDS watch would be spent and a response on its way.
	awaitCondition(t, "a watch for each of the 4 types", func() bool {
		return f.srv.cache.GetStatusInfo(node).GetNumWatches() == 4
	})
	if got := value(t, f.srv.metrics.nacks.WithLabelValues(resourcev3.EndpointType)); got != 1 {
		t.Fatalf("gavel_xds_nacks_total{type_url=EDS} = %v, want 1", got)
	}

	// Nothing may arrive until a real change: make one, and the next
	// response must carry the new version, not the rejected one again.
	if err := f.reg.Release(t.Context(), "echo", inst.ID); err != nil {
		t.Fatal(err)
	}
	next := c.next()
	if want := strconv.FormatUint(v+2, 10); next.GetVersionInfo() != want {
		t.Fatalf("first response after the NACK: %s version %q, want the new version %q",
			next.GetTypeUrl(), next.GetVersionInfo(), want)
	}
}

func TestFailedTranslationKeepsLastGoodSnapshot(t *testing.T) {
	f := newFixture(t, testIR())
	const node = "node-d"
	c := handshake(t, f, node)
	v := f.ctrl.Version()

	bad := testIR()
	bad.Services[0].Listener.Port = 0 // invalid: translation fails
	f.ctrl.SetIR(bad)
	awaitCondition(t, "a translate error", func() bool {
		return value(t, f.srv.metrics.translateErrors) == 1
	})
	snap, err := f.ctrl.Snapshot(node)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.GetVersion(resourcev3.ClusterType), strconv.FormatUint(v, 10); got != want {
		t.Fatalf("snapshot in force after the failure: version %q, want the last good %q", got, want)
	}
	if got := value(t, f.srv.metrics.snapshotVersion); got != float64(v) {
		t.Fatalf("gavel_xds_snapshot_version = %v, want %d", got, v)
	}

	// The client received nothing for the failed change: the next thing it
	// gets is the next good version.
	good := testIR()
	good.Services[0].Endpoints = []envoy.Endpoint{{Address: "10.0.0.1", Port: 8080}}
	f.ctrl.SetIR(good)
	got := c.awaitVersion(strconv.FormatUint(v+1, 10))
	if eps := endpointsOf(t, got[resourcev3.EndpointType]); !slices.Equal(eps, []string{"10.0.0.1:8080"}) {
		t.Fatalf("EDS endpoints = %v, want [10.0.0.1:8080]", eps)
	}
	if got := value(t, f.srv.metrics.translateErrors); got != 1 {
		t.Fatalf("gavel_xds_translate_errors_total = %v, want 1", got)
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	switch {
	case out.GetCounter() != nil:
		return out.GetCounter().GetValue()
	case out.GetGauge() != nil:
		return out.GetGauge().GetValue()
	}
	t.Fatalf("%v is neither a counter nor a gauge", m.Desc())
	return 0
}
