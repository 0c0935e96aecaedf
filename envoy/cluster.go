package envoy

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const httpProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// buildCluster makes the service's EDS cluster over ADS with its
// resilience settings; gRPC services get HTTP/2 upstream.
func buildCluster(s Service) (*clusterv3.Cluster, error) {
	r := s.Resilience
	c := &clusterv3.Cluster{
		Name:                 clusterName(s),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   ads(),
			ServiceName: clusterName(s),
		},
		ConnectTimeout:  durationpb.New(r.ConnectTimeout),
		CircuitBreakers: circuitBreakers(r.CircuitBreakers),
		LbPolicy:        lbPolicy(r.LB.Policy),
	}
	if !r.OutlierDetection.Disabled {
		o := r.OutlierDetection
		c.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx:    wrapperspb.UInt32(o.Consecutive5xx),
			Interval:           durationpb.New(o.Interval),
			BaseEjectionTime:   durationpb.New(o.BaseEjectionTime),
			MaxEjectionPercent: wrapperspb.UInt32(o.MaxEjectionPercent),
		}
	}
	if h := r.HealthCheck; h != nil {
		c.HealthChecks = []*corev3.HealthCheck{healthCheck(*h, "")}
	}
	if s.Protocol == ProtocolGRPC {
		opts, err := http2Options()
		if err != nil {
			return nil, err
		}
		c.TypedExtensionProtocolOptions = opts
	}
	return c, nil
}

// AuthzCluster is the STATIC cluster of the ext_authz service: HTTP/2,
// health-checked with the gRPC health protocol for the Authorization
// service, Envoy's default circuit breakers.
func AuthzCluster(a AuthzConfig) (*clusterv3.Cluster, error) {
	opts, err := http2Options()
	if err != nil {
		return nil, err
	}
	d := Defaults()
	return &clusterv3.Cluster{
		Name:                          a.Cluster,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:                durationpb.New(d.ConnectTimeout),
		CircuitBreakers:               circuitBreakers(d.CircuitBreakers),
		TypedExtensionProtocolOptions: opts,
		HealthChecks: []*corev3.HealthCheck{healthCheck(
			HealthCheck{GRPC: true, Interval: defaultHealthCheck.Interval, Timeout: defaultHealthCheck.Timeout,
				UnhealthyThreshold: defaultHealthCheck.UnhealthyThreshold, HealthyThreshold: defaultHealthCheck.HealthyThreshold},
			authzHealthCheckService)},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: a.Cluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints:         []*endpointv3.LbEndpoint{lbEndpoint(Endpoint{Address: a.Address, Port: a.Port})},
			}},
		},
	}, nil
}

func circuitBreakers(cb CircuitBreakers) *clusterv3.CircuitBreakers {
	t := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(cb.MaxConnections),
		MaxPendingRequests: wrapperspb.UInt32(cb.MaxPendingRequests),
		MaxRequests:        wrapperspb.UInt32(cb.MaxRequests),
		MaxRetries:         wrapperspb.UInt32(cb.MaxRetries),
	}
	if b := cb.RetryBudget; b != nil {
		t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: b.BudgetPercent},
			MinRetryConcurrency: wrapperspb.UInt32(b.MinRetryConcurrency),
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

// healthCheck is an active check: gRPC health (for grpcService, "" meaning
// the whole server) or an HTTP GET of the path.
func healthCheck(h HealthCheck, grpcService string) *corev3.HealthCheck {
	hc := &corev3.HealthCheck{
		Timeout:            durationpb.New(h.Timeout),
		Interval:           durationpb.New(h.Interval),
		UnhealthyThreshold: wrapperspb.UInt32(h.UnhealthyThreshold),
		HealthyThreshold:   wrapperspb.UInt32(h.HealthyThreshold),
	}
	if h.GRPC {
		hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{
			ServiceName: grpcService,
		}}
	} else {
		hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path: h.Path,
		}}
	}
	return hc
}

func lbPolicy(p string) clusterv3.Cluster_LbPolicy {
	switch p {
	case LBLeastRequest:
		return clusterv3.Cluster_LEAST_REQUEST
	case LBRingHash:
		return clusterv3.Cluster_RING_HASH
	default:
		return clusterv3.Cluster_ROUND_ROBIN
	}
}

// http2Options makes a cluster speak HTTP/2 (prior knowledge) upstream.
func http2Options() (map[string]*anypb.Any, error) {
	o, err := toAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}},
	})
	if err != nil {
		return nil, err
	}
	return map[string]*anypb.Any{httpProtocolOptions: o}, nil
}
