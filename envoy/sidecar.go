package envoy

import (
	"fmt"
	"net"
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"
)

// XDSCluster is the bootstrap's cluster for the control plane.
const XDSCluster = "gavel_xds"

// SidecarBootstrap describes the Envoy beside one service instance.
type SidecarBootstrap struct {
	// NodeID and NodeCluster identify the Envoy to the control plane; the
	// control plane keys its snapshots by node id.
	NodeID      string
	NodeCluster string
	// XDSAddr is the control plane's ADS address (host:port).
	XDSAddr string
	// Authz is the ext_authz service, a static cluster: reachable before
	// the first xDS answer.
	Authz AuthzConfig
	// AdminAddr is Envoy's admin listener (loopback by default).
	AdminAddr string
}

// GenerateBootstrap builds a sidecar's Envoy bootstrap: its node, ADS to
// gavel's control plane over HTTP/2 for listeners and clusters (routes and
// endpoints follow over the same stream), the static ext_authz cluster, and
// the admin listener with its access log. The result passes ValidateAll.
func GenerateBootstrap(s SidecarBootstrap) (*bootstrapv3.Bootstrap, error) {
	if s.NodeID == "" || s.NodeCluster == "" {
		return nil, fmt.Errorf("bootstrap: node id and node cluster are required")
	}
	if s.AdminAddr == "" {
		s.AdminAddr = "127.0.0.1:9901"
	}
	s.Authz = IR{Authz: s.Authz}.WithDefaults().Authz
	xdsHost, xdsPort, err := splitAddr("control plane", s.XDSAddr)
	if err != nil {
		return nil, err
	}
	adminHost, adminPort, err := splitAddr("admin", s.AdminAddr)
	if err != nil {
		return nil, err
	}
	h2, err := http2Options()
	if err != nil {
		return nil, err
	}
	authz, err := AuthzCluster(s.Authz)
	if err != nil {
		return nil, err
	}
	accessLog, err := toAny(&streamv3.StderrAccessLog{})
	if err != nil {
		return nil, err
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: s.NodeID, Cluster: s.NodeCluster},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   corev3.ApiConfigSource_GRPC,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster}},
				}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{
				authz,
				{
					Name:                          XDSCluster,
					ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
					ConnectTimeout:                durationpb.New(time.Second),
					TypedExtensionProtocolOptions: h2,
					LoadAssignment: &endpointv3.ClusterLoadAssignment{
						ClusterName: XDSCluster,
						Endpoints: []*endpointv3.LocalityLbEndpoints{{
							LoadBalancingWeight: wrapperspb.UInt32(1),
							LbEndpoints:         []*endpointv3.LbEndpoint{lbEndpoint(Endpoint{Address: xdsHost, Port: xdsPort})},
						}},
					},
				},
			},
		},
		Admin: &bootstrapv3.Admin{
			Address:   socketAddress(adminHost, adminPort),
			AccessLog: []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.stderr", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: accessLog}}},
		},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: invalid: %w", err)
	}
	return b, nil
}

// BootstrapYAML renders a bootstrap as YAML with Envoy's field names.
func BootstrapYAML(b *bootstrapv3.Bootstrap) ([]byte, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return yaml.JSONToYAML(js)
}

func splitAddr(what, addr string) (string, uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("bootstrap: %s address %q: %w", what, addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("bootstrap: %s address %q: port must be 1-65535", what, addr)
	}
	return host, uint32(p), nil
}
