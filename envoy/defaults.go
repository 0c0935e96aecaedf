package envoy

import (
	"slices"
	"time"
)

// Defaults gavel applies, in one place. Resilience defaults are Envoy's own
// documented ones, written out so the generated config says what it does.
const (
	DefaultPolicy           = "envoy/authz/allow"
	DefaultAuthzCluster     = "gavel_authz"
	DefaultAuthzAddress     = "127.0.0.1"
	DefaultAuthzPort        = 9191
	DefaultAuthzTimeout     = 250 * time.Millisecond
	DefaultMaxRequestBytes  = 8192
	DefaultRouteTimeout     = 15 * time.Second // Envoy's route timeout
	DefaultConnectTimeout   = 5 * time.Second
	defaultListenerAddress  = "0.0.0.0"
	defaultRouteName        = "default"
	authzHealthCheckService = "envoy.service.auth.v3.Authorization"
)

// Defaults returns the resilience settings every service starts from:
// Envoy's defaults (circuit breakers 1024/1024/1024/3, outlier detection
// 5 consecutive 5xx / 10s / 30s / 10%, connect timeout 5s, round robin).
func Defaults() Resilience {
	return Resilience{
		ConnectTimeout: DefaultConnectTimeout,
		CircuitBreakers: CircuitBreakers{
			MaxConnections:     1024,
			MaxPendingRequests: 1024,
			MaxRequests:        1024,
			MaxRetries:         3,
		},
		OutlierDetection: OutlierDetection{
			Consecutive5xx:     5,
			Interval:           10 * time.Second,
			BaseEjectionTime:   30 * time.Second,
			MaxEjectionPercent: 10,
		},
		LB: LoadBalancer{Policy: LBRoundRobin},
	}
}

// defaultHealthCheck fills an active health check (Envoy has no defaults
// for these required fields; these are Envoy Gateway's).
var defaultHealthCheck = HealthCheck{
	Interval:           3 * time.Second,
	Timeout:            1 * time.Second,
	UnhealthyThreshold: 3,
	HealthyThreshold:   1,
}

// defaultRetryBudget is Envoy's: 20% of active requests, at least 3.
var defaultRetryBudget = RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}

// WithDefaults returns a copy of the IR with every zero value that has a
// default filled in. It never modifies ir.
func (ir IR) WithDefaults() IR {
	out := IR{Authz: ir.Authz.withDefaults(), Services: make([]Service, len(ir.Services))}
	for i, s := range ir.Services {
		out.Services[i] = s.withDefaults()
	}
	return out
}

func (a AuthzConfig) withDefaults() AuthzConfig {
	setZero(&a.Cluster, DefaultAuthzCluster)
	setZero(&a.Address, DefaultAuthzAddress)
	setZero(&a.Port, DefaultAuthzPort)
	setZero(&a.Timeout, DefaultAuthzTimeout)
	setZero(&a.MaxRequestBytes, DefaultMaxRequestBytes)
	return a
}

func (s Service) withDefaults() Service {
	setZero(&s.Protocol, ProtocolHTTP)
	setZero(&s.Listener.Address, defaultListenerAddress)
	if len(s.Routes) == 0 {
		s.Routes = []Route{{Name: defaultRouteName}}
	} else {
		s.Routes = slices.Clone(s.Routes)
	}
	for i := range s.Routes {
		r := &s.Routes[i]
		if r.Path == "" {
			setZero(&r.PathPrefix, "/")
		}
		setZero(&r.Policy, DefaultPolicy)
		if !r.WebSocket {
			setZero(&r.Timeout, DefaultRouteTimeout)
		}
		r.Methods = slices.Clone(r.Methods)
	}
	s.Endpoints = slices.Clone(s.Endpoints)
	for i := range s.Endpoints {
		setZero(&s.Endpoints[i].Weight, 1)
	}

	d := Defaults()
	r := &s.Resilience
	setZero(&r.ConnectTimeout, d.ConnectTimeout)
	cb := &r.CircuitBreakers
	setZero(&cb.MaxConnections, d.CircuitBreakers.MaxConnections)
	setZero(&cb.MaxPendingRequests, d.CircuitBreakers.MaxPendingRequests)
	setZero(&cb.MaxRequests, d.CircuitBreakers.MaxRequests)
	setZero(&cb.MaxRetries, d.CircuitBreakers.MaxRetries)
	if cb.RetryBudget != nil {
		b := *cb.RetryBudget
		setZero(&b.BudgetPercent, defaultRetryBudget.BudgetPercent)
		setZero(&b.MinRetryConcurrency, defaultRetryBudget.MinRetryConcurrency)
		cb.RetryBudget = &b
	}
	o := &r.OutlierDetection
	setZero(&o.Consecutive5xx, d.OutlierDetection.Consecutive5xx)
	setZero(&o.Interval, d.OutlierDetection.Interval)
	setZero(&o.BaseEjectionTime, d.OutlierDetection.BaseEjectionTime)
	setZero(&o.MaxEjectionPercent, d.OutlierDetection.MaxEjectionPercent)
	if r.HealthCheck != nil {
		h := *r.HealthCheck
		if s.Protocol == ProtocolGRPC && h.Path == "" {
			h.GRPC = true
		}
		setZero(&h.Interval, defaultHealthCheck.Interval)
		setZero(&h.Timeout, defaultHealthCheck.Timeout)
		setZero(&h.UnhealthyThreshold, defaultHealthCheck.UnhealthyThreshold)
		setZero(&h.HealthyThreshold, defaultHealthCheck.HealthyThreshold)
		r.HealthCheck = &h
	}
	setZero(&r.LB.Policy, d.LB.Policy)
	return s
}

func setZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}
