package envoy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestDeployConfigsAreValid parses every Envoy config shipped in
// deploy/envoy and checks the invariants gavel relies on: ext_authz comes
// before the router, fails closed with 503, and speaks the v3 API.
func TestDeployConfigsAreValid(t *testing.T) {
	files, err := filepath.Glob("../deploy/envoy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs in deploy/envoy: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBootstrap(src)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, l := range b.GetStaticResources().GetListeners() {
				for _, fc := range l.GetFilterChains() {
					for _, nf := range fc.GetFilters() {
						var hcm hcmv3.HttpConnectionManager
						if err := anypb.UnmarshalTo(nf.GetTypedConfig(), &hcm, proto.UnmarshalOptions{}); err != nil {
							continue
						}
						checkHTTPFilters(t, &hcm)
						checked++
					}
				}
			}
			if checked == 0 {
				t.Fatal("no HTTP connection manager found")
			}
		})
	}
}

func checkHTTPFilters(t *testing.T, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 || filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		names := []string{}
		for _, f := range filters {
			names = append(names, f.GetName())
		}
		t.Fatalf("http filters %s: want ext_authz first and the router last", strings.Join(names, ", "))
	}
	var az extauthzv3.ExtAuthz
	if err := filters[0].GetTypedConfig().UnmarshalTo(&az); err != nil {
		t.Fatal(err)
	}
	if az.GetFailureModeAllow() {
		t.Error("failure_mode_allow is true: gavel's configs fail closed")
	}
	if az.GetStatusOnError().GetCode() != 503 {
		t.Errorf("status_on_error %v, want 503 so outages are told apart from denials", az.GetStatusOnError().GetCode())
	}
	if az.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("transport_api_version %v, want V3", az.GetTransportApiVersion())
	}
}

func TestParseBootstrapRejectsBadConfig(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not yaml", "a: [", "not YAML"},
		{"unknown field", "admin: {adress: {}}", "unknown field"},
		{"unknown extension", `static_resources: {listeners: [{name: l, address: {socket_address: {address: 127.0.0.1, port_value: 1}}, filter_chains: [{filters: [{name: x, typed_config: {"@type": type.googleapis.com/nope.Nope}}]}]}]}`, "nope.Nope"},
		{"invalid value", "static_resources: {clusters: [{name: '', connect_timeout: 1s}]}", "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
