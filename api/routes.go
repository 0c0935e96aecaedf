package api

import (
	"net/http"
	"strings"

	"github.com/gavel-dev/gavel/api/auth"
)

// Route is one HTTP route and the role a caller needs for it.
type Route struct {
	// Pattern is the route's ServeMux pattern, as New registers it.
	Pattern string
	// Role is what a caller needs; "" means the route is open (no
	// credentials asked), which Why explains.
	Role string
	Why  string
}

// Routes is every route New may register, with its role. It is the one
// place gavel's API access rules are written; a route missing here needs
// admin (see RouteRole), so a new handler is closed until it is listed.
//
// Admin holds every role. The open routes:
//   - /healthz and /readyz are probed by orchestrators and load balancers
//     that carry no credentials.
//   - /metrics is scraped by Prometheus, which by default sends none; with
//     Options.MetricsAuth it needs viewer.
//   - /openapi.json describes the API: it holds no secrets, and clients
//     and tools read it before they hold a credential.
//   - /authz/ is the HTTP authorization endpoint nginx, Traefik and Envoy
//     call on every request of the traffic they protect. Those requests
//     carry the end user's own credentials, which the policy itself
//     authenticates; asking for a gavel credential too would have every
//     proxy hold an API key and make gavel refuse traffic the policy would
//     decide.
//
// Port discovery writes (services register, renew, release) need admin:
// there is no role for services, so they are given an admin key, and
// reads need viewer.
var Routes = []Route{
	{Pattern: "GET /healthz", Why: "health probes carry no credentials"},
	{Pattern: "GET /readyz", Why: "readiness probes carry no credentials"},
	{Pattern: "GET /metrics", Why: "Prometheus scrapes without credentials by default (--metrics-auth asks for viewer)"},
	{Pattern: "GET /openapi.json", Why: "the API description holds no secrets, and clients and tools read it before they hold a credential"},
	{Pattern: "/authz/", Why: "proxies call it for every request; the policy authenticates the end user's own credentials"},
	{Pattern: "/v1/hooks/", Role: auth.RoleAgent},
	{Pattern: "/v1/validate", Role: auth.RoleAgent},
	{Pattern: "/mcp", Role: auth.RoleAgent},
	{Pattern: "GET /v1/events", Role: auth.RoleViewer},
	{Pattern: "POST /v1/services/{name}/instances", Role: auth.RoleAdmin},
	{Pattern: "PUT /v1/services/{name}/instances/{id}", Role: auth.RoleAdmin},
	{Pattern: "DELETE /v1/services/{name}/instances/{id}", Role: auth.RoleAdmin},
	{Pattern: "GET /v1/services", Role: auth.RoleViewer},
	{Pattern: "GET /v1/services/{name}", Role: auth.RoleViewer},
	{Pattern: "GET /v1/xds/nodes/{node}/snapshot", Role: auth.RoleViewer},
	{Pattern: "/debug/pprof/", Role: auth.RoleAdmin},
	{Pattern: "/debug/pprof/cmdline", Role: auth.RoleAdmin},
	{Pattern: "/debug/pprof/profile", Role: auth.RoleAdmin},
	{Pattern: "/debug/pprof/symbol", Role: auth.RoleAdmin},
	{Pattern: "/debug/pprof/trace", Role: auth.RoleAdmin},
}

// prefixRoles give the role of routes below a path that Routes does not
// list one by one: the audit trail and the bundle and key administration
// (reads and writes differ).
var prefixRoles = []struct {
	prefix      string
	read, write string
}{
	{"/v1/decisions", auth.RoleViewer, auth.RoleAdmin},
	{"/v1/audit", auth.RoleViewer, auth.RoleAdmin},
	{"/v1/bundles", auth.RoleViewer, auth.RolePolicyAdmin},
	{"/v1/activations", auth.RoleViewer, auth.RolePolicyAdmin},
	{"/v1/keys", auth.RoleAdmin, auth.RoleAdmin},
}

var routeRoles = func() map[string]Route {
	m := make(map[string]Route, len(Routes))
	for _, r := range Routes {
		m[r.Pattern] = r
	}
	return m
}()

// RouteRole is the role a request with method needs on the route
// registered as pattern; open reports a route that asks for no
// credentials.
func RouteRole(pattern, method string, metricsAuth bool) (role string, open bool) {
	if r, ok := routeRoles[pattern]; ok {
		if r.Pattern == "GET /metrics" && metricsAuth {
			return auth.RoleViewer, false
		}
		return r.Role, r.Role == ""
	}
	path := pattern
	if _, p, ok := strings.Cut(pattern, " "); ok {
		path = strings.TrimSpace(p)
	}
	for _, pr := range prefixRoles {
		if path == pr.prefix || strings.HasPrefix(path, pr.prefix+"/") {
			if isRead(method) {
				return pr.read, false
			}
			return pr.write, false
		}
	}
	return auth.RoleAdmin, false
}

func isRead(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// Checker authenticates a request and admits it when its caller holds
// role; otherwise it answers the request itself (401, 403) and returns
// false. *auth.Authenticator is one.
type Checker interface {
	Check(w http.ResponseWriter, r *http.Request, role, route string) (*http.Request, bool)
}

// protect puts every route of mux behind c, by the role RouteRole gives.
// Requests no route matches (404, 405) go straight to mux.
func protect(mux *http.ServeMux, c Checker, metricsAuth bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" {
			mux.ServeHTTP(w, r)
			return
		}
		role, open := RouteRole(pattern, r.Method, metricsAuth)
		if !open {
			var ok bool
			if r, ok = c.Check(w, r, role, pattern); !ok {
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}
