package envoy

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := func() Service {
		return Service{Name: "a", Listener: Listener{Port: 1000}, Endpoints: []Endpoint{{Address: "10.0.0.1", Port: 80}}}
	}
	with := func(f func(*Service)) IR {
		s := ok()
		f(&s)
		return IR{Services: []Service{s}}
	}
	tests := []struct {
		name string
		ir   IR
		want []string // every one must appear in the error
	}{
		{"valid", with(func(*Service) {}), nil},
		{"empty IR", IR{}, nil},
		{"no name", with(func(s *Service) { s.Name = "" }), []string{"services[0]: name is required"}},
		{"bad name", with(func(s *Service) { s.Name = "A B" }), []string{`service "A B": name`}},
		{"duplicate name", IR{Services: []Service{ok(), func() Service { s := ok(); s.Listener.Port = 2; return s }()}}, []string{`service "a": name: defined twice`}},
		{"same listener", IR{Services: []Service{ok(), func() Service { s := ok(); s.Name = "b"; return s }()}}, []string{`service "b": listener 0.0.0.0:1000: already used by service "a"`}},
		{"protocol", with(func(s *Service) { s.Protocol = "tcp" }), []string{`protocol "tcp"`}},
		{"no port", with(func(s *Service) { s.Listener.Port = 0 }), []string{"listener.port 0"}},
		{"listener address", with(func(s *Service) { s.Listener.Address = "localhost" }), []string{`listener.address "localhost"`}},
		{"route both paths", with(func(s *Service) { s.Routes = []Route{{Name: "r", Path: "/a", PathPrefix: "/b"}} }), []string{`route "r": path and path_prefix are both set`}},
		{"route relative path", with(func(s *Service) { s.Routes = []Route{{Name: "r", PathPrefix: "a"}} }), []string{`route "r": path "a"`}},
		{"route no name", with(func(s *Service) { s.Routes = []Route{{PathPrefix: "/"}} }), []string{"routes[0]: name is required"}},
		{"route duplicate", with(func(s *Service) { s.Routes = []Route{{Name: "r"}, {Name: "r"}} }), []string{`route "r": name: defined twice`}},
		{"method", with(func(s *Service) { s.Routes = []Route{{Name: "r", Methods: []string{"get"}}} }), []string{`route "r": methods: "get"`}},
		{"policy", with(func(s *Service) { s.Routes = []Route{{Name: "r", Policy: "data.x.allow!"}} }), []string{`route "r": policy "data.x.allow!"`}},
		{"public body", with(func(s *Service) { s.Routes = []Route{{Name: "r", Public: true, ReadsBody: true}} }), []string{`route "r": public and reads_body`}},
		{"negative timeout", with(func(s *Service) { s.Routes = []Route{{Name: "r", Timeout: -time.Second}} }), []string{`route "r": timeout -1s`}},
		{"grpc websocket", with(func(s *Service) { s.Protocol = ProtocolGRPC; s.Routes = []Route{{Name: "r", WebSocket: true}} }), []string{"websocket on a grpc service"}},
		{"ring hash without header", with(func(s *Service) { s.Resilience.LB.Policy = LBRingHash }), []string{"resilience.lb.hash_header is required"}},
		{"header without ring hash", with(func(s *Service) { s.Resilience.LB.HashHeader = "x-a" }), []string{"only used with policy ring_hash"}},
		{"lb policy", with(func(s *Service) { s.Resilience.LB.Policy = "random" }), []string{`resilience.lb.policy "random"`}},
		{"http health check without path", with(func(s *Service) { s.Resilience.HealthCheck = &HealthCheck{} }), []string{"resilience.health_check.path is required"}},
		{"grpc health check needs no path", with(func(s *Service) { s.Protocol = ProtocolGRPC; s.Resilience.HealthCheck = &HealthCheck{} }), nil},
		{"health check both", with(func(s *Service) { s.Resilience.HealthCheck = &HealthCheck{Path: "/h", GRPC: true} }), []string{"path and grpc are both set"}},
		{"budget", with(func(s *Service) { s.Resilience.CircuitBreakers.RetryBudget = &RetryBudget{BudgetPercent: 101} }), []string{"retry_budget.budget_percent 101"}},
		{"ejection", with(func(s *Service) { s.Resilience.OutlierDetection.MaxEjectionPercent = 200 }), []string{"max_ejection_percent 200"}},
		{"endpoint", with(func(s *Service) { s.Endpoints = []Endpoint{{Address: "x", Port: 0}} }), []string{`endpoints[0]: address "x"`, "endpoints[0]: port 0"}},
		{"endpoint twice", with(func(s *Service) { s.Endpoints = append(s.Endpoints, s.Endpoints[0]) }), []string{"endpoints[1]: 10.0.0.1:80 listed twice"}},
		{"authz", IR{Authz: AuthzConfig{Cluster: "Bad Name", Address: "host", Port: 70000, Timeout: -1}}, []string{`authz: cluster "Bad Name"`, `authz: address "host"`, "authz: port 70000", "authz: timeout"}},
		{"every problem at once", with(func(s *Service) {
			s.Listener.Port = 0
			s.Routes = []Route{{Name: "r", Methods: []string{"x"}}}
			s.Resilience.LB.Policy = "nope"
		}), []string{"listener.port", `route "r": methods`, "resilience.lb.policy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ir.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	ir := IR{Services: []Service{{
		Name:       "a",
		Listener:   Listener{Port: 1},
		Routes:     []Route{{Name: "ws", WebSocket: true}, {Name: "r"}},
		Resilience: Resilience{CircuitBreakers: CircuitBreakers{RetryBudget: &RetryBudget{}}},
		Endpoints:  []Endpoint{{Address: "10.0.0.1", Port: 1}},
	}, {
		Name:       "b",
		Protocol:   ProtocolGRPC,
		Listener:   Listener{Port: 2},
		Resilience: Resilience{HealthCheck: &HealthCheck{}},
	}}}.WithDefaults()
	s := ir.Services[0]
	d := Defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"authz cluster", ir.Authz.Cluster, DefaultAuthzCluster},
		{"authz timeout", ir.Authz.Timeout, 250 * time.Millisecond},
		{"authz max body", ir.Authz.MaxRequestBytes, uint32(8192)},
		{"listener address", s.Listener.Address, "0.0.0.0"},
		{"route prefix", s.Routes[1].PathPrefix, "/"},
		{"route policy", s.Routes[1].Policy, "envoy/authz/allow"},
		{"route timeout", s.Routes[1].Timeout, 15 * time.Second},
		{"websocket timeout", s.Routes[0].Timeout, time.Duration(0)},
		{"weight", s.Endpoints[0].Weight, uint32(1)},
		{"connect timeout", s.Resilience.ConnectTimeout, 5 * time.Second},
		{"breakers", s.Resilience.CircuitBreakers.MaxRequests, d.CircuitBreakers.MaxRequests},
		{"max retries", s.Resilience.CircuitBreakers.MaxRetries, uint32(3)},
		{"retry budget", *s.Resilience.CircuitBreakers.RetryBudget, RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}},
		{"outlier", s.Resilience.OutlierDetection, d.OutlierDetection},
		{"grpc health check", ir.Services[1].Resilience.HealthCheck.GRPC, true},
		{"health check interval", ir.Services[1].Resilience.HealthCheck.Interval, 3 * time.Second},
		{"lb", s.Resilience.LB.Policy, LBRoundRobin},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := ir.Validate(); err != nil {
		t.Errorf("defaulted IR does not validate: %v", err)
	}
}
