package extauthz

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// CheckBuckets resolve microseconds: a cached Check takes a few tens.
var CheckBuckets = []float64{
	5e-6, 1e-5, 2.5e-5, 5e-5, 7.5e-5, 1e-4, 1.5e-4, 2.5e-4, 5e-4, 7.5e-4,
	1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1,
}

// Metrics are the authorization endpoints' Prometheus metrics.
type Metrics struct {
	duration  *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	wouldDeny *prometheus.CounterVec
	inflight  *prometheus.GaugeVec

	inflightByAPI map[string]prometheus.Gauge
	durations     map[[2]string]prometheus.Observer

	mu       sync.RWMutex
	children map[[3]string]prometheus.Counter
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gavel_authz_check_duration_seconds",
			Help:    "Time to answer an authorization check, from request to response, by api (grpc, http) and result (allowed, denied, error, would_deny).",
			Buckets: CheckBuckets,
		}, []string{"api", "result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_authz_decisions_total",
			Help: "Authorization answers by api, result and reason code.",
		}, []string{"api", "result", "reason"}),
		wouldDeny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_authz_dry_run_would_deny_total",
			Help: "Requests a dry-run entry point would have denied, by entry point.",
		}, []string{"entry"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gavel_authz_checks_in_flight",
			Help: "Authorization checks being answered now, by api.",
		}, []string{"api"}),
		children: map[[3]string]prometheus.Counter{},
	}
	m.inflightByAPI = map[string]prometheus.Gauge{}
	m.durations = map[[2]string]prometheus.Observer{}
	for _, api := range []string{"grpc", "http"} {
		m.inflightByAPI[api] = m.inflight.WithLabelValues(api)
		for _, r := range []Result{Allowed, Denied, Errored, WouldDeny} {
			m.durations[[2]string{api, string(r)}] = m.duration.WithLabelValues(api, string(r))
		}
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.decisions, m.wouldDeny, m.inflight)
	}
	return m
}

// inFlight is the in-flight gauge of an api ("grpc" or "http").
func (m *Metrics) inFlight(api string) prometheus.Gauge { return m.inflightByAPI[api] }

// observe records one answer.
func (m *Metrics) observe(api string, a Answer, seconds float64) {
	m.durations[[2]string{api, string(a.Result)}].Observe(seconds)
	m.counter(api, string(a.Result), a.Code).Inc()
	if a.Result == WouldDeny {
		m.wouldDeny.WithLabelValues(a.Decision.Entry).Inc()
	}
}

// counter caches label children: the label sets are few and the hot path
// should not hash them on every request.
func (m *Metrics) counter(api, result, reason string) prometheus.Counter {
	k := [3]string{api, result, reason}
	m.mu.RLock()
	c, ok := m.children[k]
	m.mu.RUnlock()
	if ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok = m.children[k]; !ok {
		c = m.decisions.WithLabelValues(api, result, reason)
		m.children[k] = c
	}
	return c
}
