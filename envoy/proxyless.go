package envoy

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Proxyless gRPC clients (gRPC-Go's google.golang.org/grpc/xds, dialling
// xds:///<service>) ask LDS for a listener named after the target, expect
// an api_listener carrying an HTTP connection manager, then follow it over
// RDS, CDS and EDS. They share the service's EDS cluster and assignment
// with the sidecars; only the listener and route configuration are their
// own.
//
// The HCM has the router as its only HTTP filter: gRPC-Go rejects a
// listener with an HTTP filter it does not know unless the filter is marked
// optional, and it has no ext_authz client. Proxyless clients therefore
// reach the service without a gavel authorization check; the sidecar path
// (ingress_<service>) is the one that enforces policy.

// Names of the proxyless resources of a service: the listener is named
// after the service, because that is the name a client dialling
// xds:///<service> asks LDS for; the route configuration likewise. They
// cannot clash with the sidecar's ingress_<service>, except for a service
// whose own name is ingress_<other>, which Translate rejects (see
// Resources.checkNames).
func proxylessListenerName(s Service) string    { return s.Name }
func proxylessRouteConfigName(s Service) string { return s.Name }

// ProxylessListenerName is the LDS name (and xds:/// target) a proxyless
// gRPC client uses for the service.
func ProxylessListenerName(service string) string { return service }

// buildProxylessListener makes the service's api_listener: an HCM whose
// routes come over RDS (ADS), with the router as its only filter.
func buildProxylessListener(s Service) (*listenerv3.Listener, error) {
	router, err := toAny(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := toAny(&hcmv3.HttpConnectionManager{
		StatPrefix: s.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: proxylessRouteConfigName(s),
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: routerFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}},
		},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:        proxylessListenerName(s),
		ApiListener: &listenerv3.ApiListener{ApiListener: hcm},
	}, nil
}

// buildProxylessRouteConfig makes the service's proxyless route
// configuration: one virtual host whose domain is the service name (the
// authority of xds:///<service>), every path to the service's cluster.
// Ring hash services hash the same header as the sidecar does.
func buildProxylessRouteConfig(s Service) *routev3.RouteConfiguration {
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName(s)}}
	if s.Resilience.LB.Policy == LBRingHash {
		ra.HashPolicy = []*routev3.RouteAction_HashPolicy{{
			PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{
				HeaderName: s.Resilience.LB.HashHeader,
			}},
		}}
	}
	return &routev3.RouteConfiguration{
		Name: proxylessRouteConfigName(s),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    s.Name,
			Domains: []string{s.Name},
			Routes: []*routev3.Route{{
				Name:   "default",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: ra},
			}},
		}},
	}
}

// CheckReferences checks what go-control-plane's Snapshot.Consistent
// cannot: Consistent collects RDS names from listeners' filter chains only,
// never from api_listeners, so it would count the proxyless route
// configurations as unreferenced. CheckReferences requires that every
// listener (filter chain or api_listener) names an existing route
// configuration over RDS, that every route configuration is named by a
// listener, that every route's cluster exists, and that every EDS cluster
// has its assignment and every assignment its cluster. Resource names must
// be unique per type.
func (r Resources) CheckReferences() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	routes := map[string]bool{}
	for _, rc := range r.AllRoutes() {
		if routes[rc.GetName()] {
			add("route configuration %q: defined twice", rc.GetName())
		}
		routes[rc.GetName()] = true
	}
	referenced := map[string]bool{}
	listeners := map[string]bool{}
	for _, l := range r.AllListeners() {
		if listeners[l.GetName()] {
			add("listener %q: defined twice", l.GetName())
		}
		listeners[l.GetName()] = true
		names, err := rdsNames(l)
		if err != nil {
			add("listener %q: %v", l.GetName(), err)
		}
		for _, n := range names {
			referenced[n] = true
			if !routes[n] {
				add("listener %q: route configuration %q does not exist", l.GetName(), n)
			}
		}
	}
	clusters := map[string]bool{}
	eds := map[string]string{} // EDS service name -> cluster
	for _, c := range r.Clusters {
		if clusters[c.GetName()] {
			add("cluster %q: defined twice", c.GetName())
		}
		clusters[c.GetName()] = true
		if c.GetType() == clusterv3.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			eds[name] = c.GetName()
		}
	}
	for _, rc := range r.AllRoutes() {
		if !referenced[rc.GetName()] {
			add("route configuration %q: no listener names it", rc.GetName())
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				if c := rt.GetRoute().GetCluster(); c != "" && !clusters[c] {
					add("route configuration %q: route %q: cluster %q does not exist", rc.GetName(), rt.GetName(), c)
				}
			}
		}
	}
	assigned := map[string]bool{}
	for _, e := range r.Endpoints {
		if assigned[e.GetClusterName()] {
			add("cluster load assignment %q: defined twice", e.GetClusterName())
		}
		assigned[e.GetClusterName()] = true
		if _, ok := eds[e.GetClusterName()]; !ok {
			add("cluster load assignment %q: no EDS cluster names it", e.GetClusterName())
		}
	}
	for name, c := range eds {
		if !assigned[name] {
			add("cluster %q: no cluster load assignment %q", c, name)
		}
	}
	return errors.Join(errs...)
}

// rdsNames returns the RDS route configuration names an HCM of the
// listener names, in its filter chains or its api_listener.
func rdsNames(l *listenerv3.Listener) ([]string, error) {
	var out []string
	if a := l.GetApiListener().GetApiListener(); a != nil {
		var hcm hcmv3.HttpConnectionManager
		if err := a.UnmarshalTo(&hcm); err != nil {
			return nil, fmt.Errorf("api_listener: %w", err)
		}
		if n := hcm.GetRds().GetRouteConfigName(); n != "" {
			out = append(out, n)
		}
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() != hcmFilter {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				return nil, fmt.Errorf("filter %s: %w", f.GetName(), err)
			}
			if n := hcm.GetRds().GetRouteConfigName(); n != "" {
				out = append(out, n)
			}
		}
	}
	return out, nil
}
