package events

import "github.com/prometheus/client_golang/prometheus"

// Reasons a connection ends; the values of
// gavel_websocket_disconnects_total's reason label.
const (
	ReasonClient   = "client"   // the client closed or went away
	ReasonLagged   = "lagged"   // the client fell behind the stream
	ReasonError    = "error"    // the connection broke, the peer stopped answering pings, or the bus failed
	ReasonShutdown = "shutdown" // gavel is shutting down
)

// Metrics are the event stream's Prometheus metrics.
type Metrics struct {
	connections prometheus.Gauge
	sent        prometheus.Counter
	disconnects *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_websocket_connections",
			Help: "Open WebSocket connections to the event stream (/v1/events).",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_websocket_events_sent_total",
			Help: "Events written to WebSocket clients of the event stream.",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_websocket_disconnects_total",
			Help: "Event stream connections ended, by reason (client, lagged, error, shutdown).",
		}, []string{"reason"}),
	}
	for _, r := range []string{ReasonClient, ReasonLagged, ReasonError, ReasonShutdown} {
		m.disconnects.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.sent, m.disconnects)
	}
	return m
}
