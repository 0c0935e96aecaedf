package xds

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds/ports"
)

func TestWithInstancesIgnoresUndeclaredServices(t *testing.T) {
	c := &Controller{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ir := testIR()
	ir.Services[0].Endpoints = []envoy.Endpoint{{Address: "10.0.0.1", Port: 8080}}
	got := c.withInstances(ir, []ports.Instance{
		{Service: "echo", Address: "127.0.0.1", Port: 20001},
		{Service: "echo", Address: "10.0.0.1", Port: 8080}, // already in the IR
		{Service: "unknown", Address: "127.0.0.1", Port: 20002},
	})
	want := []envoy.Endpoint{{Address: "10.0.0.1", Port: 8080}, {Address: "127.0.0.1", Port: 20001}}
	if len(got.Services) != 1 || !slices.Equal(got.Services[0].Endpoints, want) {
		t.Fatalf("services %+v, want echo with %v", got.Services, want)
	}
	if len(ir.Services[0].Endpoints) != 1 {
		t.Fatalf("withInstances changed its input: %v", ir.Services[0].Endpoints)
	}
}

func TestDumpJSON(t *testing.T) {
	f := newFixture(t, testIR())
	const node = "node-dump"
	handshake(t, f, node)
	snap, err := f.ctrl.Snapshot(node)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DumpJSON(snap)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version   map[string]string
		Resources map[string]map[string]map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for typ, name := range map[string]string{
		resourcev3.ClusterType:  "service_echo",
		resourcev3.EndpointType: "service_echo",
		resourcev3.ListenerType: "ingress_echo",
		resourcev3.RouteType:    "ingress_echo",
	} {
		if got.Version[typ] != "1" {
			t.Errorf("version of %s = %q, want 1", typ, got.Version[typ])
		}
		if _, ok := got.Resources[typ][name]; !ok {
			t.Errorf("dump has no %s %q:\n%s", typ, name, b)
		}
	}
	if _, err := DumpJSON(nil); err == nil {
		t.Error("DumpJSON(nil) succeeded")
	}
}

func TestMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, err := NewServer(t.Context(), ServerOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv.metrics.nacks.WithLabelValues(resourcev3.ClusterType)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{
		"gavel_xds_connected_nodes", "gavel_xds_pushes_total", "gavel_xds_push_duration_seconds",
		"gavel_xds_snapshot_version", "gavel_xds_nacks_total", "gavel_xds_translate_errors_total",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not registered (have %v)", want, names)
		}
	}
	if _, err := NewServer(t.Context(), ServerOptions{Registerer: reg}); err == nil ||
		!strings.Contains(err.Error(), "xds metrics") {
		t.Errorf("registering twice: err = %v, want a registration error", err)
	}
}

// TestDeltaADS: a delta ADS client gets the clusters, its NACK is counted,
// and closing its stream disconnects the node.
func TestDeltaADS(t *testing.T) {
	f := newFixture(t, testIR())
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	recv := make(chan *discovery.DeltaDiscoveryResponse, 8)
	go func() {
		defer close(recv)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			recv <- resp
		}
	}()
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{
		Node:    &core.Node{Id: "node-delta"},
		TypeUrl: resourcev3.ClusterType,
	}); err != nil {
		t.Fatal(err)
	}
	var resp *discovery.DeltaDiscoveryResponse
	select {
	case resp = <-recv:
	case <-t.Context().Done():
	}
	if resp == nil || len(resp.GetResources()) != 1 || resp.GetResources()[0].GetName() != "service_echo" {
		t.Fatalf("delta CDS response %v, want service_echo", resp)
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{
		TypeUrl:       resourcev3.ClusterType,
		ResponseNonce: resp.GetNonce(),
		ErrorDetail:   &status.Status{Code: 3, Message: "rejected"},
	}); err != nil {
		t.Fatal(err)
	}
	awaitCondition(t, "the delta NACK to be counted", func() bool {
		return value(t, f.srv.metrics.nacks.WithLabelValues(resourcev3.ClusterType)) == 1
	})
	if got := value(t, f.srv.metrics.connectedNodes); got != 1 {
		t.Fatalf("gavel_xds_connected_nodes = %v, want 1", got)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	awaitCondition(t, "the node to disconnect", func() bool {
		return value(t, f.srv.metrics.connectedNodes) == 0
	})
	for range recv { // the server ends the stream
	}
}
