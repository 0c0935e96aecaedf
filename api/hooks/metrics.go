package hooks

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hooks endpoint's Prometheus metrics.
type Metrics struct {
	duration   *prometheus.HistogramVec
	decisions  *prometheus.CounterVec
	ruleHits   *prometheus.CounterVec
	failClosed *prometheus.CounterVec
	rejects    *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gavel_hook_request_duration_seconds",
			Help:    "Time to answer a Claude Code hook, from request to response, by event.",
			Buckets: []float64{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1},
		}, []string{"event"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_hook_decisions_total",
			Help: "Claude Code hook decisions by event and outcome (allow, deny, ask, no_opinion, error).",
		}, []string{"event", "outcome"}),
		ruleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_hook_rule_matches_total",
			Help: "Policy rules that produced a hook decision, by event and rule id.",
		}, []string{"event", "rule"}),
		failClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_hook_fail_closed_total",
			Help: "Gating hook events blocked because no decision could be made, by event.",
		}, []string{"event"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_hook_rejected_total",
			Help: "Hook requests answered 400, by reason (malformed, too_large).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.decisions, m.ruleHits, m.failClosed, m.rejects)
	}
	return m
}

func (m *Metrics) observe(event, outcome string, d time.Duration) {
	m.duration.WithLabelValues(event).Observe(d.Seconds())
	m.decisions.WithLabelValues(event, outcome).Inc()
}

func (m *Metrics) rules(event string, ids []string) {
	for _, id := range ids {
		m.ruleHits.WithLabelValues(event, id).Inc()
	}
}

func (m *Metrics) rejected(reason string) { m.rejects.WithLabelValues(reason).Inc() }
