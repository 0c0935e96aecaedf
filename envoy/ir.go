package envoy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// IR is gavel's intermediate representation of the sidecar world: the
// services Envoy fronts and the ext_authz service every request is checked
// against. It knows nothing of xDS; [Translate] turns it into Envoy
// resources. Zero values mean "use the default" (see [IR.WithDefaults]).
type IR struct {
	Services []Service   `yaml:"services"`
	Authz    AuthzConfig `yaml:"authz"`
}

// Protocol is what a service speaks upstream.
type Protocol string

// Protocols a service may speak. gRPC services get HTTP/2 upstream.
const (
	ProtocolHTTP Protocol = "http"
	ProtocolGRPC Protocol = "grpc"
)

// Service is one upstream behind its own Envoy listener.
type Service struct {
	Name       string     `yaml:"name"`
	Protocol   Protocol   `yaml:"protocol"`
	Listener   Listener   `yaml:"listener"`
	Routes     []Route    `yaml:"routes"`
	Resilience Resilience `yaml:"resilience"`
	Endpoints  []Endpoint `yaml:"endpoints"`
	// FailOpen lets requests through when the authz service cannot be
	// reached (failure_mode_allow). Off by default: gavel fails closed.
	FailOpen bool `yaml:"fail_open"`
}

// Listener is where Envoy accepts the service's traffic.
type Listener struct {
	Address string `yaml:"address"`
	Port    uint32 `yaml:"port"`
}

// Endpoint is one instance of a service.
type Endpoint struct {
	Address string `yaml:"address"`
	Port    uint32 `yaml:"port"`
	Weight  uint32 `yaml:"weight"`
}

// Route matches requests by path (exact Path or PathPrefix, one of them)
// and optionally by method, and names the policy entry point that decides.
type Route struct {
	Name       string   `yaml:"name"`
	PathPrefix string   `yaml:"path_prefix"`
	Path       string   `yaml:"path"`
	Methods    []string `yaml:"methods"`
	// Policy is the entry point path (e.g. envoy/authz/allow) sent to the
	// authz service as context extension "policy".
	Policy string `yaml:"policy"`
	// Public routes skip ext_authz entirely (health checks, static files).
	Public bool `yaml:"public"`
	// ReadsBody buffers up to AuthzConfig.MaxRequestBytes of the body for
	// the policy (partial messages allowed).
	ReadsBody bool `yaml:"reads_body"`
	WebSocket bool `yaml:"websocket"`
	// Timeout is the route timeout. Zero means 15s, Envoy's default, except
	// on WebSocket routes where it means no timeout.
	Timeout time.Duration `yaml:"timeout"`
}

// Resilience is how Envoy treats a service's endpoints.
type Resilience struct {
	ConnectTimeout   time.Duration    `yaml:"connect_timeout"`
	CircuitBreakers  CircuitBreakers  `yaml:"circuit_breakers"`
	OutlierDetection OutlierDetection `yaml:"outlier_detection"`
	// HealthCheck is an active health check; nil means none.
	HealthCheck *HealthCheck `yaml:"health_check"`
	LB          LoadBalancer `yaml:"lb"`
}

// CircuitBreakers are the DEFAULT-priority thresholds of a cluster.
type CircuitBreakers struct {
	MaxConnections     uint32 `yaml:"max_connections"`
	MaxPendingRequests uint32 `yaml:"max_pending_requests"`
	MaxRequests        uint32 `yaml:"max_requests"`
	MaxRetries         uint32 `yaml:"max_retries"`
	// RetryBudget, when set, overrides MaxRetries.
	RetryBudget *RetryBudget `yaml:"retry_budget"`
}

// RetryBudget limits concurrent retries to a share of active requests.
type RetryBudget struct {
	BudgetPercent       float64 `yaml:"budget_percent"`
	MinRetryConcurrency uint32  `yaml:"min_retry_concurrency"`
}

// OutlierDetection is passive health checking on consecutive 5xx.
type OutlierDetection struct {
	Disabled           bool          `yaml:"disabled"`
	Consecutive5xx     uint32        `yaml:"consecutive_5xx"`
	Interval           time.Duration `yaml:"interval"`
	BaseEjectionTime   time.Duration `yaml:"base_ejection_time"`
	MaxEjectionPercent uint32        `yaml:"max_ejection_percent"`
}

// HealthCheck is an active health check: HTTP GET of Path, or the gRPC
// health protocol when GRPC is set (the default for gRPC services).
type HealthCheck struct {
	Path               string        `yaml:"path"`
	GRPC               bool          `yaml:"grpc"`
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
	UnhealthyThreshold uint32        `yaml:"unhealthy_threshold"`
	HealthyThreshold   uint32        `yaml:"healthy_threshold"`
}

// LB policies.
const (
	LBRoundRobin   = "round_robin"
	LBLeastRequest = "least_request"
	LBRingHash     = "ring_hash"
)

// LoadBalancer picks an endpoint. Ring hash hashes HashHeader.
type LoadBalancer struct {
	Policy     string `yaml:"policy"`
	HashHeader string `yaml:"hash_header"`
}

// AuthzConfig is the ext_authz service (gavel authz) every listener calls.
type AuthzConfig struct {
	Cluster         string        `yaml:"cluster"`
	Address         string        `yaml:"address"`
	Port            uint32        `yaml:"port"`
	Timeout         time.Duration `yaml:"timeout"`
	MaxRequestBytes uint32        `yaml:"max_request_bytes"`
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]{0,62}[a-z0-9])?$`)
	policyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$`)
	methodRE = regexp.MustCompile(`^[A-Z]+$`)
	headerRE = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_|~-]+$`)
)

// Validate reports every problem in the IR at once (errors.Join), each
// naming the service, route and field. Zero values that have a default
// are valid.
func (ir IR) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	a := ir.Authz
	if a.Cluster != "" && !nameRE.MatchString(a.Cluster) {
		add("authz: cluster %q: want lower-case letters, digits, '-', '_' or '.'", a.Cluster)
	}
	if a.Address != "" && !isIP(a.Address) {
		add("authz: address %q: want an IP address", a.Address)
	}
	if a.Port > 65535 {
		add("authz: port %d: want 1-65535", a.Port)
	}
	if a.Timeout < 0 {
		add("authz: timeout %v: must not be negative", a.Timeout)
	}

	names := map[string]bool{}
	listeners := map[string]string{}
	for i, s := range ir.Services {
		where := fmt.Sprintf("service %q", s.Name)
		switch {
		case s.Name == "":
			where = fmt.Sprintf("services[%d]", i)
			add("%s: name is required", where)
		case !nameRE.MatchString(s.Name):
			add("%s: name: want lower-case letters, digits, '-', '_' or '.' (at most 64)", where)
		case names[s.Name]:
			add("%s: name: defined twice", where)
		}
		names[s.Name] = true
		if s.Protocol != "" && s.Protocol != ProtocolHTTP && s.Protocol != ProtocolGRPC {
			add("%s: protocol %q: want http or grpc", where, s.Protocol)
		}
		if s.Listener.Address != "" && !isIP(s.Listener.Address) {
			add("%s: listener.address %q: want an IP address", where, s.Listener.Address)
		}
		if s.Listener.Port == 0 || s.Listener.Port > 65535 {
			add("%s: listener.port %d: want 1-65535", where, s.Listener.Port)
		} else {
			addr := s.Listener.Address
			if addr == "" {
				addr = defaultListenerAddress
			}
			key := fmt.Sprintf("%s:%d", addr, s.Listener.Port)
			if other, ok := listeners[key]; ok {
				add("%s: listener %s: already used by service %q", where, key, other)
			} else {
				listeners[key] = s.Name
			}
		}
		errs = append(errs, s.validateRoutes(where)...)
		errs = append(errs, s.Resilience.validate(where, s.Protocol)...)
		seen := map[string]bool{}
		for j, e := range s.Endpoints {
			ew := fmt.Sprintf("%s: endpoints[%d]", where, j)
			if !isIP(e.Address) {
				add("%s: address %q: want an IP address", ew, e.Address)
			}
			if e.Port == 0 || e.Port > 65535 {
				add("%s: port %d: want 1-65535", ew, e.Port)
			}
			key := fmt.Sprintf("%s:%d", e.Address, e.Port)
			if seen[key] {
				add("%s: %s listed twice", ew, key)
			}
			seen[key] = true
		}
	}
	return errors.Join(errs...)
}

func (s Service) validateRoutes(where string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]bool{}
	for i, r := range s.Routes {
		rw := fmt.Sprintf("%s: route %q", where, r.Name)
		switch {
		case r.Name == "":
			rw = fmt.Sprintf("%s: routes[%d]", where, i)
			add("%s: name is required", rw)
		case !nameRE.MatchString(r.Name):
			add("%s: name: want lower-case letters, digits, '-', '_' or '.'", rw)
		case names[r.Name]:
			add("%s: name: defined twice", rw)
		}
		names[r.Name] = true
		if r.Path != "" && r.PathPrefix != "" {
			add("%s: path and path_prefix are both set; keep one", rw)
		}
		for _, p := range []string{r.Path, r.PathPrefix} {
			if p != "" && !validPath(p) {
				add("%s: path %q: must start with / and hold no spaces or control characters", rw, p)
			}
		}
		for _, m := range r.Methods {
			if !methodRE.MatchString(m) {
				add("%s: methods: %q is not an upper-case HTTP method", rw, m)
			}
		}
		if r.Policy != "" && !policyRE.MatchString(r.Policy) {
			add("%s: policy %q: want an entry point path like envoy/authz/allow", rw, r.Policy)
		}
		if r.Public && r.ReadsBody {
			add("%s: public and reads_body are both set; a public route is never checked", rw)
		}
		if r.Timeout < 0 {
			add("%s: timeout %v: must not be negative", rw, r.Timeout)
		}
		if r.WebSocket && s.Protocol == ProtocolGRPC {
			add("%s: websocket on a grpc service", rw)
		}
	}
	return errs
}

func (r Resilience) validate(where string, p Protocol) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.ConnectTimeout < 0 {
		add("%s: resilience.connect_timeout %v: must not be negative", where, r.ConnectTimeout)
	}
	if b := r.CircuitBreakers.RetryBudget; b != nil && (b.BudgetPercent < 0 || b.BudgetPercent > 100) {
		add("%s: resilience.circuit_breakers.retry_budget.budget_percent %v: want 0-100", where, b.BudgetPercent)
	}
	o := r.OutlierDetection
	if o.MaxEjectionPercent > 100 {
		add("%s: resilience.outlier_detection.max_ejection_percent %d: want 0-100", where, o.MaxEjectionPercent)
	}
	if o.Interval < 0 || o.BaseEjectionTime < 0 {
		add("%s: resilience.outlier_detection: durations must not be negative", where)
	}
	if h := r.HealthCheck; h != nil {
		if h.GRPC && h.Path != "" {
			add("%s: resilience.health_check: path and grpc are both set; keep one", where)
		}
		if !h.GRPC && h.Path == "" && p != ProtocolGRPC {
			add("%s: resilience.health_check.path is required (or grpc: true)", where)
		}
		if h.Path != "" && !validPath(h.Path) {
			add("%s: resilience.health_check.path %q: must start with / and hold no spaces or control characters", where, h.Path)
		}
		if h.Interval < 0 || h.Timeout < 0 {
			add("%s: resilience.health_check: durations must not be negative", where)
		}
	}
	switch r.LB.Policy {
	case "", LBRoundRobin, LBLeastRequest:
		if r.LB.HashHeader != "" {
			add("%s: resilience.lb.hash_header is only used with policy ring_hash", where)
		}
	case LBRingHash:
		if r.LB.HashHeader == "" {
			add("%s: resilience.lb.hash_header is required with policy ring_hash", where)
		} else if !headerRE.MatchString(r.LB.HashHeader) {
			add("%s: resilience.lb.hash_header %q: want a lower-case header name", where, r.LB.HashHeader)
		}
	default:
		add("%s: resilience.lb.policy %q: want one of %s", where, r.LB.Policy,
			strings.Join([]string{LBRoundRobin, LBLeastRequest, LBRingHash}, ", "))
	}
	return errs
}

func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") || !utf8.ValidString(p) {
		return false
	}
	return !strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func isIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

// sortedServices returns the services ordered by name.
func sortedServices(in []Service) []Service {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}
