package envoy

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Context extension keys the authz service reads from each check.
const (
	ContextPolicy  = "policy"
	ContextService = "service"
	ContextRoute   = "route"
)

// buildRouteConfig makes the service's RDS route configuration: one
// virtual host for any domain, the routes in the order given (first match
// wins), all to the service's cluster.
func buildRouteConfig(s Service, a AuthzConfig) (*routev3.RouteConfiguration, error) {
	routes := make([]*routev3.Route, 0, len(s.Routes))
	for _, r := range s.Routes {
		authz, err := toAny(routeAuthz(s, r, a))
		if err != nil {
			return nil, err
		}
		routes = append(routes, &routev3.Route{
			Name:   r.Name,
			Match:  routeMatch(r),
			Action: &routev3.Route_Route{Route: routeAction(s, r)},
			TypedPerFilterConfig: map[string]*anypb.Any{
				extAuthzFilter: authz,
			},
		})
	}
	return &routev3.RouteConfiguration{
		Name: routeConfigName(s),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    s.Name,
			Domains: []string{"*"},
			Routes:  routes,
		}},
	}, nil
}

func routeMatch(r Route) *routev3.RouteMatch {
	m := &routev3.RouteMatch{}
	if r.Path != "" {
		m.PathSpecifier = &routev3.RouteMatch_Path{Path: r.Path}
	} else {
		m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: r.PathPrefix}
	}
	if len(r.Methods) > 0 {
		var sm *matcherv3.StringMatcher
		if len(r.Methods) == 1 {
			sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: r.Methods[0]}}
		} else {
			sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
				Regex: "^(" + strings.Join(r.Methods, "|") + ")$",
			}}}
		}
		m.Headers = []*routev3.HeaderMatcher{{
			Name:                 ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm},
		}}
	}
	return m
}

func routeAction(s Service, r Route) *routev3.RouteAction {
	ra := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName(s)},
		Timeout:          durationpb.New(r.Timeout),
	}
	if s.Resilience.LB.Policy == LBRingHash {
		ra.HashPolicy = []*routev3.RouteAction_HashPolicy{{
			PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{
				HeaderName: s.Resilience.LB.HashHeader,
			}},
		}}
	}
	if r.WebSocket {
		ra.UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{
			UpgradeType: "websocket",
			Enabled:     wrapperspb.Bool(true),
		}}
	}
	return ra
}

// routeAuthz is the route's ext_authz setting: disabled for public routes;
// otherwise context extensions naming the policy entry point (and the
// service and route, for audit), and body buffering when the route's
// policy reads the body. Buffering is configured per route rather than on
// the filter so that only those routes wait for the body.
func routeAuthz(s Service, r Route, a AuthzConfig) *extauthzv3.ExtAuthzPerRoute {
	if r.Public {
		return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}}
	}
	cs := &extauthzv3.CheckSettings{ContextExtensions: map[string]string{
		ContextPolicy:  r.Policy,
		ContextService: s.Name,
		ContextRoute:   r.Name,
	}}
	if r.ReadsBody {
		cs.WithRequestBody = &extauthzv3.BufferSettings{
			MaxRequestBytes:     a.MaxRequestBytes,
			AllowPartialMessage: true,
		}
	}
	return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: cs}}
}
