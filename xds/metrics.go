package xds

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the control plane's Prometheus collectors. They are created
// by [NewServer] and shared with the [Controller] it feeds.
type metrics struct {
	connectedNodes  prometheus.Gauge
	pushes          prometheus.Counter
	pushDuration    prometheus.Histogram
	snapshotVersion prometheus.Gauge
	nacks           *prometheus.CounterVec
	translateErrors prometheus.Counter
}

// newMetrics makes the collectors and registers them on reg; a nil reg
// leaves them unregistered (tests read them directly).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connectedNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_xds_connected_nodes",
			Help: "Distinct xDS node ids with at least one open stream.",
		}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_xds_pushes_total",
			Help: "Snapshots built from a change and set for every known node.",
		}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_xds_push_duration_seconds",
			Help:    "Time from the first coalesced change to the new snapshot being set, holdoff included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		snapshotVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_xds_snapshot_version",
			Help: "Version number of the snapshot in force.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_xds_nacks_total",
			Help: "Discovery requests that rejected the configuration sent (error_detail set), by type URL.",
		}, []string{"type_url"}),
		translateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_xds_translate_errors_total",
			Help: "Changes whose translation or snapshot consistency check failed; the last good snapshot stayed in force.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.connectedNodes, m.pushes, m.pushDuration, m.snapshotVersion, m.nacks, m.translateErrors,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("xds metrics: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
