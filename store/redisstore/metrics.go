package redisstore

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Redis tier's Prometheus metrics.
type Metrics struct {
	errors     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	setDropped prometheus.Counter
	pubDropped prometheus.Counter
	degraded   prometheus.Gauge
}

// Operation labels of gavel_redis_errors_total.
const (
	opGet       = "get"
	opSet       = "set"
	opDecode    = "decode"
	opPublish   = "publish"
	opSubscribe = "subscribe"
)

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_redis_errors_total",
			Help: "Redis calls that failed, by operation (get, set, decode, publish, subscribe); a failed get is a cache miss, never a failed decision.",
		}, []string{"op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gavel_redis_duration_seconds",
			Help:    "Time of Redis cache calls that reached the network, by operation.",
			Buckets: []float64{5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1},
		}, []string{"op"}),
		setDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_redis_cache_sets_dropped_total",
			Help: "L2 cache writes skipped because as many as allowed were already in flight.",
		}),
		pubDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_event_bus_publish_dropped_total",
			Help: "Events not sent to other replicas (the Redis queue was full or Redis failed); local subscribers still got them.",
		}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_event_bus_degraded",
			Help: "1 while the event bus falls back to in-process fan-out (Redis unreachable), 0 when events cross replicas.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.duration, m.setDropped, m.pubDropped, m.degraded)
	}
	return m
}
