package policy

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// EvalBuckets resolve microseconds: a cached decision takes a few, an
// evaluation tens to hundreds.
var EvalBuckets = []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.25, 1}

// Metrics are the engine's and the cache's Prometheus metrics.
type Metrics struct {
	evalDuration   prometheus.Histogram
	evalErrors     *prometheus.CounterVec
	cacheHitsL1    prometheus.Counter
	cacheHitsL2    prometheus.Counter
	cacheMissesL1  prometheus.Counter
	cacheMissesL2  prometheus.Counter
	cacheBypass    prometheus.Counter
	cacheEvictions prometheus.Counter
	activations    *prometheus.CounterVec
	bundleInfo     *prometheus.GaugeVec
	entryCacheable *prometheus.GaugeVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_decision_cache_hits_total",
		Help: "Decisions answered from the cache, by tier (l1 in process, l2 shared).",
	}, []string{"tier"})
	misses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_decision_cache_misses_total",
		Help: "Cache lookups that found nothing, by tier.",
	}, []string{"tier"})
	m := &Metrics{
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_policy_eval_duration_seconds",
			Help:    "Time to evaluate a policy entry point (cache misses only).",
			Buckets: EvalBuckets,
		}),
		evalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_policy_eval_errors_total",
			Help: "Decisions that failed, by reason code (no_bundle, timeout, undefined_decision, eval_error, ...).",
		}, []string{"code"}),
		cacheHitsL1:   hits.WithLabelValues("l1"),
		cacheHitsL2:   hits.WithLabelValues("l2"),
		cacheMissesL1: misses.WithLabelValues("l1"),
		cacheMissesL2: misses.WithLabelValues("l2"),
		cacheBypass: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_decision_cache_bypass_total",
			Help: "Decisions evaluated without the cache because their entry point is not cacheable.",
		}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_decision_cache_evictions_total",
			Help: "Entries evicted from the in-process cache to respect its size bound.",
		}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_policy_bundle_activations_total",
			Help: "Bundle activations, by result (ok, rejected).",
		}, []string{"result"}),
		bundleInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gavel_policy_bundle_info",
			Help: "The active bundle: 1 for its revision and source.",
		}, []string{"revision", "source"}),
		entryCacheable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gavel_policy_entrypoint_cacheable",
			Help: "1 if the active bundle's entry point may be cached, 0 if not (the log says why).",
		}, []string{"entry"}),
	}
	ratio := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gavel_decision_cache_hit_ratio",
		Help: "In-process cache hits over lookups since start.",
	}, func() float64 {
		h, mi := counterValue(m.cacheHitsL1), counterValue(m.cacheMissesL1)
		if h+mi == 0 {
			return 0
		}
		return h / (h + mi)
	})
	if reg != nil {
		reg.MustRegister(m.evalDuration, m.evalErrors, hits, misses, m.cacheBypass, m.cacheEvictions,
			m.activations, m.bundleInfo, m.entryCacheable, ratio)
	}
	return m
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}
