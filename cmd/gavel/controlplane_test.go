package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const servicesYAML = `services:
  - name: orders
    listener: {address: 127.0.0.1, port: 10001}
    routes:
      - {name: health, path: /healthz, public: true}
      - {name: all, path_prefix: /}
  - name: legacy
    fail_open: true
    listener: {address: 127.0.0.1, port: 10002}
    routes:
      - {name: all, path_prefix: /}
`

// TestControlPlaneServesRegisteredInstances runs gavel serve with a
// services file, registers an instance through port discovery, and reads
// the result as an Envoy would, over ADS.
func TestControlPlaneServesRegisteredInstances(t *testing.T) {
	dir := t.TempDir()
	services := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(services, []byte(servicesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGavel(t, "--services", services)
	if g.info.XDSAddr == "" {
		t.Fatal("no xds_addr in the discovery file")
	}
	admin := useAdminKey(t, g) // port discovery writes need admin
	out, errOut, code := runGavel(t, "", "ports", "register", "orders", "--data-dir", g.info.DataDir)
	if code != 0 {
		t.Fatalf("register: exit %d: %s", code, errOut)
	}
	_, after, _ := strings.Cut(out, `"port": `)
	port, _, _ := strings.Cut(after, ",")
	port = strings.TrimSpace(port)

	conn, err := grpc.NewClient(g.info.XDSAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "orders-1", Cluster: "orders"}
	recv := func(typ string) *discoveryv3.DiscoveryResponse {
		t.Helper()
		done := make(chan *discoveryv3.DiscoveryResponse, 1)
		go func() {
			resp, err := stream.Recv()
			if err != nil {
				t.Error(err)
			}
			done <- resp
		}()
		select {
		case resp := <-done:
			if resp.GetTypeUrl() != typ {
				t.Fatalf("got %s, want %s", resp.GetTypeUrl(), typ)
			}
			return resp
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s response", typ)
			return nil
		}
	}

	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	cds := recv(resourcev3.ClusterType)
	cluster := &clusterv3.Cluster{}
	for _, r := range cds.Resources {
		c := &clusterv3.Cluster{}
		if err := r.UnmarshalTo(c); err == nil && c.Name == "service_orders" {
			cluster = c
		}
	}
	if len(cds.Resources) != 2 || cluster.Name != "service_orders" {
		t.Fatalf("clusters: %v", cds.Resources)
	}
	// ACK, then ask for the cluster's endpoints.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: cds.VersionInfo, ResponseNonce: cds.Nonce}); err != nil {
		t.Fatal(err)
	}
	// As Envoy does, ask for the endpoints of every EDS cluster: in ADS mode
	// the answer waits until all of them are named.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"service_legacy", cluster.Name}}); err != nil {
		t.Fatal(err)
	}
	eds := recv(resourcev3.EndpointType)
	cla := &endpointv3.ClusterLoadAssignment{}
	for _, r := range eds.Resources {
		c := &endpointv3.ClusterLoadAssignment{}
		if err := r.UnmarshalTo(c); err == nil && c.ClusterName == cluster.Name {
			cla = c
		}
	}
	if len(cla.GetEndpoints()) == 0 {
		t.Fatalf("endpoints: %v", eds.Resources)
	}
	got := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
	if port == "" || got == 0 || port != strconv.FormatUint(uint64(got), 10) {
		t.Fatalf("endpoint port %d, want the registered %s", got, port)
	}

	// The admin dump shows the node's configuration.
	resp, err := getWithKey("http://"+g.info.HTTPAddr+"/v1/xds/nodes/orders-1/snapshot", admin)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ingress_orders") {
		t.Fatalf("snapshot dump: %d %s", resp.StatusCode, body)
	}
	// The fail-open exception is visible: logged and exported.
	resp, err = http.Get("http://" + g.info.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `gavel_xds_service_fail_open{service="legacy"} 1`) || strings.Contains(string(body), `service="orders"`) {
		t.Errorf("fail-open metric missing or wrong:\n%s", grepLines(string(body), "fail_open"))
	}
	if !strings.Contains(g.logs.String(), "service fails open") {
		t.Error("the fail-open service was not logged")
	}
	resp, err = getWithKey("http://"+g.info.HTTPAddr+"/v1/xds/nodes/nobody/snapshot", admin)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("dump of an unknown node: %d", resp.StatusCode)
	}
}

// TestControlPlaneCommand runs gavel controlplane alone: xDS and port
// discovery, no ext_authz.
func TestControlPlaneCommand(t *testing.T) {
	g := startGavelCmd(t, "controlplane")
	if g.info.AuthzAddr != "" || g.info.XDSAddr == "" {
		t.Fatalf("discovery file %+v: want xDS and no ext_authz", g.info)
	}
	if _, errOut, code := runGavel(t, "", "ports", "register", "billing", "--data-dir", g.info.DataDir); code != 0 {
		t.Fatalf("register: exit %d: %s", code, errOut)
	}
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/authz/envoy/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/authz on the control plane: %d, want 404", resp.StatusCode)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
