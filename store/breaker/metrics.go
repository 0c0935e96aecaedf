package breaker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the breakers' Prometheus metrics; one set serves every
// breaker of a process, told apart by the name label.
type Metrics struct {
	state   *prometheus.GaugeVec
	changes *prometheus.CounterVec
	retries *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gavel_circuit_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"name"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_circuit_breaker_transitions_total",
			Help: "Circuit breaker state changes, by the state entered.",
		}, []string{"name", "to"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_circuit_breaker_retries_total",
			Help: "Calls retried after a transient error.",
		}, []string{"name"}),
	}
	if reg != nil {
		reg.MustRegister(m.state, m.changes, m.retries)
	}
	return m
}
