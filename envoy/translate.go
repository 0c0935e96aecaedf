package envoy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resources are the xDS resources for one IR, each slice sorted by name.
// Every cluster has a ClusterLoadAssignment of the same name (EDS) except
// the STATIC authz cluster, and every listener names a route configuration
// (RDS), so a snapshot made of ByType is consistent.
//
// ProxylessListeners and ProxylessRoutes serve proxyless gRPC clients
// (see proxyless.go): an api_listener named after each service and its
// route configuration, over the same clusters and assignments. They are
// kept out of ByType (Envoy cannot take an api_listener over LDS, and
// go-control-plane's Snapshot.Consistent does not see RDS names referenced
// from api_listeners); ProxylessByType serves them, and
// [Resources.CheckReferences] checks the whole set.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment

	ProxylessListeners []*listenerv3.Listener
	ProxylessRoutes    []*routev3.RouteConfiguration
}

// ByType groups the sidecar resources by type URL, the shape
// go-control-plane's cache.NewSnapshot takes.
func (r Resources) ByType() map[resourcev3.Type][]types.Resource {
	return map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: asResources(r.Listeners),
		resourcev3.RouteType:    asResources(r.Routes),
		resourcev3.ClusterType:  asResources(r.Clusters),
		resourcev3.EndpointType: asResources(r.Endpoints),
	}
}

// ProxylessByType groups what proxyless gRPC clients are served: their
// api_listeners and route configurations, and the clusters and
// assignments they share with the sidecars.
func (r Resources) ProxylessByType() map[resourcev3.Type][]types.Resource {
	return map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: asResources(r.ProxylessListeners),
		resourcev3.RouteType:    asResources(r.ProxylessRoutes),
		resourcev3.ClusterType:  asResources(r.Clusters),
		resourcev3.EndpointType: asResources(r.Endpoints),
	}
}

// AllListeners returns the sidecar and proxyless listeners, sorted by name.
func (r Resources) AllListeners() []*listenerv3.Listener {
	out := slices.Concat(r.Listeners, r.ProxylessListeners)
	sortBy(out, (*listenerv3.Listener).GetName)
	return out
}

// AllRoutes returns the sidecar and proxyless route configurations, sorted
// by name.
func (r Resources) AllRoutes() []*routev3.RouteConfiguration {
	out := slices.Concat(r.Routes, r.ProxylessRoutes)
	sortBy(out, (*routev3.RouteConfiguration).GetName)
	return out
}

func asResources[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// Names of the resources generated for a service.
func listenerName(s Service) string    { return "ingress_" + s.Name }
func routeConfigName(s Service) string { return "ingress_" + s.Name }
func clusterName(s Service) string     { return "service_" + s.Name }

// Translate turns the IR into xDS resources. It is pure and deterministic:
// the same IR gives the same resources, sorted by name. Defaults are applied
// first, the IR is validated, and every generated message must pass its
// proto's ValidateAll; otherwise Translate returns an error and no
// resources.
func Translate(ir IR) (Resources, error) {
	ir = ir.WithDefaults()
	if err := ir.Validate(); err != nil {
		return Resources{}, fmt.Errorf("translate: invalid IR: %w", err)
	}
	// The authz cluster is not among them: it is static, in the sidecar's
	// bootstrap (GenerateBootstrap), so ext_authz can reach gavel before the
	// first xDS answer, and a static cluster cannot also come over CDS.
	var res Resources
	for _, s := range sortedServices(ir.Services) {
		l, err := buildListener(s, ir.Authz)
		if err != nil {
			return Resources{}, fmt.Errorf("translate: service %q: listener: %w", s.Name, err)
		}
		rc, err := buildRouteConfig(s, ir.Authz)
		if err != nil {
			return Resources{}, fmt.Errorf("translate: service %q: routes: %w", s.Name, err)
		}
		c, err := buildCluster(s)
		if err != nil {
			return Resources{}, fmt.Errorf("translate: service %q: cluster: %w", s.Name, err)
		}
		res.Listeners = append(res.Listeners, l)
		res.Routes = append(res.Routes, rc)
		res.Clusters = append(res.Clusters, c)
		res.Endpoints = append(res.Endpoints, buildLoadAssignment(s))

		pl, err := buildProxylessListener(s)
		if err != nil {
			return Resources{}, fmt.Errorf("translate: service %q: proxyless listener: %w", s.Name, err)
		}
		res.ProxylessListeners = append(res.ProxylessListeners, pl)
		res.ProxylessRoutes = append(res.ProxylessRoutes, buildProxylessRouteConfig(s))
	}
	sortBy(res.Listeners, (*listenerv3.Listener).GetName)
	sortBy(res.Routes, (*routev3.RouteConfiguration).GetName)
	sortBy(res.Clusters, (*clusterv3.Cluster).GetName)
	sortBy(res.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	sortBy(res.ProxylessListeners, (*listenerv3.Listener).GetName)
	sortBy(res.ProxylessRoutes, (*routev3.RouteConfiguration).GetName)
	if err := res.validate(); err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	// Names must not clash across sidecar and proxyless resources (a
	// service named ingress_<other> would), and every reference, including
	// those from api_listeners, must resolve.
	if err := res.CheckReferences(); err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	return res, nil
}

func sortBy[T any](s []T, key func(T) string) {
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}

type validator interface {
	proto.Message
	ValidateAll() error
}

// validate runs ValidateAll on every resource, naming the ones that fail.
func (r Resources) validate() error {
	var errs []error
	check := func(kind, name string, m validator) {
		if err := m.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	for _, m := range r.AllListeners() {
		check("listener", m.GetName(), m)
	}
	for _, m := range r.AllRoutes() {
		check("route configuration", m.GetName(), m)
	}
	for _, m := range r.Clusters {
		check("cluster", m.GetName(), m)
	}
	for _, m := range r.Endpoints {
		check("cluster load assignment", m.GetClusterName(), m)
	}
	return errors.Join(errs...)
}

// ads is the config source for everything gavel serves: the ADS stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// toAny packs a typed extension config.
func toAny(m proto.Message) (*anypb.Any, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a, nil
}
