package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Filter names, as Envoy knows them.
const (
	extAuthzFilter = "envoy.filters.http.ext_authz"
	routerFilter   = "envoy.filters.http.router"
	hcmFilter      = "envoy.filters.network.http_connection_manager"
)

// buildListener makes the service's ingress listener: one HTTP connection
// manager whose routes come over RDS, with ext_authz before the router.
func buildListener(s Service, a AuthzConfig) (*listenerv3.Listener, error) {
	authz, err := toAny(extAuthz(s, a))
	if err != nil {
		return nil, err
	}
	router, err := toAny(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: s.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: routeConfigName(s),
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: extAuthzFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: authz}},
			{Name: routerFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}},
		},
	}
	hcmAny, err := toAny(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    listenerName(s),
		Address: socketAddress(s.Listener.Address, s.Listener.Port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       hcmFilter,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}, nil
}

// extAuthz is the service's ext_authz filter: gRPC v3 to the authz cluster,
// failing closed with 503 unless the service opts into failing open. Body
// buffering is switched on per route (see routeAuthz), so routes that do not
// read the body are not delayed by it.
func extAuthz(s Service, a AuthzConfig) *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: a.Cluster,
			}},
			Timeout: durationpb.New(a.Timeout),
		}},
		TransportApiVersion:       corev3.ApiVersion_V3,
		FailureModeAllow:          s.FailOpen,
		FailureModeAllowHeaderAdd: s.FailOpen,
		StatusOnError:             &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		ValidateMutations:         true,
	}
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
