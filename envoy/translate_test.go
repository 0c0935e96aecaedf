package envoy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/out from testdata/in")

// TestTranslateGolden translates every testdata/in/*.yaml and compares the
// resources with testdata/out/*.json. Regenerate with
// go test ./envoy -run TestTranslateGolden -update, and review the diff.
func TestTranslateGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no inputs in testdata/in: %v", err)
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			res := translateFile(t, in)
			checkInvariants(t, res)
			got := marshalResources(t, res)
			out := filepath.Join("testdata", "out", name+".json")
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the translation of %s; run with -update if the change is intended\n%s", out, in, firstDiff(want, got))
			}
		})
	}
}

func TestTranslateIsDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/in/*.yaml")
	for _, in := range files {
		a := marshalResources(t, translateFile(t, in))
		b := marshalResources(t, translateFile(t, in))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two translations differ", in)
		}
	}
	// Service order in the IR does not matter either.
	ir := benchIR(5, 3)
	a := marshalResources(t, mustTranslate(t, ir))
	for i, j := 0, len(ir.Services)-1; i < j; i, j = i+1, j-1 {
		ir.Services[i], ir.Services[j] = ir.Services[j], ir.Services[i]
	}
	if b := marshalResources(t, mustTranslate(t, ir)); !bytes.Equal(a, b) {
		t.Error("reordering services changed the output")
	}
}

func TestTranslateDoesNotModifyIR(t *testing.T) {
	ir := IR{Services: []Service{{Name: "a", Listener: Listener{Port: 1}, Endpoints: []Endpoint{{Address: "10.0.0.1", Port: 2}}}}}
	if _, err := Translate(ir); err != nil {
		t.Fatal(err)
	}
	if ir.Services[0].Routes != nil || ir.Services[0].Endpoints[0].Weight != 0 || ir.Authz.Cluster != "" {
		t.Errorf("Translate filled defaults into the caller's IR: %+v", ir)
	}
}

func TestTranslateRejectsInvalidIR(t *testing.T) {
	_, err := Translate(IR{Services: []Service{{Name: "x"}}})
	if err == nil || !strings.Contains(err.Error(), `service "x": listener.port`) {
		t.Fatalf("err = %v, want the listener port named", err)
	}
}

func TestResourcesByType(t *testing.T) {
	res := mustTranslate(t, benchIR(2, 1))
	byType := res.ByType()
	want := map[string]int{resourcev3.ListenerType: 2, resourcev3.RouteType: 2, resourcev3.ClusterType: 2, resourcev3.EndpointType: 2} // the authz cluster is in the bootstrap
	for typ, n := range want {
		if len(byType[typ]) != n {
			t.Errorf("%s: %d resources, want %d", typ, len(byType[typ]), n)
		}
	}
}

// checkInvariants asserts what gavel relies on in every translation: every
// listener runs ext_authz before the router, over gRPC v3, failing with
// 503; every route has an ext_authz per-route config; every EDS cluster
// has an assignment and every locality a weight.
func checkInvariants(t *testing.T, res Resources) {
	t.Helper()
	for _, l := range res.Listeners {
		var hcm hcmv3.HttpConnectionManager
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			t.Fatal(err)
		}
		checkHTTPFilters(t, withFailClosed(t, &hcm))
		if hcm.GetRds().GetRouteConfigName() == "" {
			t.Errorf("listener %s: no RDS route config name", l.GetName())
		}
	}
	for _, rc := range res.Routes {
		for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
			if r.GetTypedPerFilterConfig()[extAuthzFilter] == nil {
				t.Errorf("route %s/%s: no ext_authz per-route config", rc.GetName(), r.GetName())
			}
		}
	}
	cla := map[string]bool{}
	for _, e := range res.Endpoints {
		cla[e.GetClusterName()] = true
		for _, loc := range e.GetEndpoints() {
			if loc.GetLoadBalancingWeight().GetValue() == 0 {
				t.Errorf("assignment %s: locality without load_balancing_weight", e.GetClusterName())
			}
			if loc.GetLocality() == nil {
				t.Errorf("assignment %s: locality without a locality field (gRPC-Go NACKs it)", e.GetClusterName())
			}
		}
	}
	for _, c := range res.Clusters {
		if c.GetEdsClusterConfig() != nil && !cla[c.GetEdsClusterConfig().GetServiceName()] {
			t.Errorf("cluster %s: no assignment", c.GetName())
		}
	}
}

// withFailClosed returns the HCM with failure_mode_allow cleared after
// checking that, when set, the header is added too, so checkHTTPFilters
// (shared with the deploy configs) can check the rest.
func withFailClosed(t *testing.T, hcm *hcmv3.HttpConnectionManager) *hcmv3.HttpConnectionManager {
	t.Helper()
	hcm = proto.Clone(hcm).(*hcmv3.HttpConnectionManager)
	var az extauthzv3.ExtAuthz
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&az); err != nil {
		t.Fatal(err)
	}
	if az.GetFailureModeAllow() != az.GetFailureModeAllowHeaderAdd() {
		t.Error("failure_mode_allow without failure_mode_allow_header_add")
	}
	az.FailureModeAllow = false
	packed, err := toAny(&az)
	if err != nil {
		t.Fatal(err)
	}
	hcm.GetHttpFilters()[0].ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed}
	return hcm
}

func translateFile(t testing.TB, path string) Resources {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ir, err := ParseServices(path, src)
	if err != nil {
		t.Fatal(err)
	}
	return mustTranslate(t, ir)
}

func mustTranslate(t testing.TB, ir IR) Resources {
	t.Helper()
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// marshalResources renders resources as indented JSON. protojson's own
// output varies its whitespace on purpose, so it is compacted and
// re-indented here to keep golden files stable.
func marshalResources(t testing.TB, res Resources) []byte {
	t.Helper()
	enc := func(msgs []proto.Message) []json.RawMessage {
		out := make([]json.RawMessage, len(msgs))
		for i, m := range msgs {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = b
		}
		return out
	}
	doc := struct {
		Listeners []json.RawMessage `json:"listeners"`
		Routes    []json.RawMessage `json:"routes"`
		Clusters  []json.RawMessage `json:"clusters"`
		Endpoints []json.RawMessage `json:"endpoints"`
		// Proxyless gRPC clients' api_listeners and routes (proxyless.go).
		ProxylessListeners []json.RawMessage `json:"proxyless_listeners"`
		ProxylessRoutes    []json.RawMessage `json:"proxyless_routes"`
	}{enc(msgs(res.Listeners)), enc(msgs(res.Routes)), enc(msgs(res.Clusters)), enc(msgs(res.Endpoints)),
		enc(msgs(res.ProxylessListeners)), enc(msgs(res.ProxylessRoutes))}
	compact, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func msgs[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, wl, gl)
		}
	}
	return ""
}

// benchIR has n services with eps endpoints each, in the shape of
// testdata/in/routes.yaml.
func benchIR(n, eps int) IR {
	ir := IR{Services: make([]Service, n)}
	for i := range n {
		s := Service{
			Name:     fmt.Sprintf("svc-%04d", i),
			Listener: Listener{Port: uint32(10000 + i)},
			Routes: []Route{
				{Name: "health", Path: "/healthz", Public: true},
				{Name: "upload", PathPrefix: "/upload/", Methods: []string{"POST", "PUT"}, ReadsBody: true},
				{Name: "rest", PathPrefix: "/"},
			},
			Resilience: Resilience{HealthCheck: &HealthCheck{Path: "/healthz"}},
		}
		for j := range eps {
			s.Endpoints = append(s.Endpoints, Endpoint{Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), Port: 8080})
		}
		ir.Services[i] = s
	}
	return ir
}

func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		ir := benchIR(n, 10)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Translate(ir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
