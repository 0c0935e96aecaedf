// Package bundlesync keeps a replica's policy engine on the store's active
// bundle: at start it activates the revision the store says is active, and
// then every activation any replica records, within the store's watch
// latency (PostgreSQL LISTEN/NOTIFY, else polling). Each replica compiles
// and swaps on its own; a bundle that fails to compile here leaves the
// previous one serving and is reported.
package bundlesync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// Options configure a [Syncer].
type Options struct {
	Store   store.Bundles
	Service *policy.Service
	Limits  policy.Limits
	// Verifier, when set, checks each bundle again before it serves.
	Verifier *policy.Verifier
	// Bus, when set, delivers activation events from other replicas too
	// (Redis pub/sub): whichever arrives first applies it.
	Bus     store.Bus
	Metrics *Metrics
	Logger  *slog.Logger
}

// Syncer applies activations to a policy service.
type Syncer struct {
	opts Options

	mu      sync.Mutex // one activation at a time, from the watch or the bus
	applied int64      // the latest activation seq applied
}

// New returns a syncer; Start applies the active revision, Run follows.
func New(opts Options) *Syncer {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Syncer{opts: opts}
}

// Start applies the store's active revision. It reports false when the
// store has none yet (the caller serves its own default bundle then).
func (s *Syncer) Start(ctx context.Context) (bool, error) {
	a, err := s.opts.Store.Active(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("active bundle: %w", err)
	}
	return true, s.apply(ctx, a)
}

// Run follows activations until ctx ends. The watch is opened again if it
// ends early (a lost database connection).
func (s *Syncer) Run(ctx context.Context) error {
	if s.opts.Bus != nil {
		go s.followBus(ctx)
	}
	for ctx.Err() == nil {
		ch, err := s.opts.Store.WatchActivations(ctx)
		if err != nil {
			s.opts.Logger.Warn("bundle activations cannot be watched; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		for a := range ch {
			if err := s.apply(ctx, a); err != nil {
				s.opts.Logger.Error("activation not applied; the previous bundle keeps serving", "revision", a.Revision, "err", err)
			}
		}
	}
	return nil
}

// followBus applies the activation events the bus delivers.
func (s *Syncer) followBus(ctx context.Context) {
	for ctx.Err() == nil {
		sub := s.opts.Bus.Subscribe(ctx)
		for e := range sub.Events() {
			if e.Type != store.EventActivation {
				continue
			}
			var a store.Activation
			if err := json.Unmarshal(e.Data, &a); err != nil || a.Revision == "" {
				continue
			}
			if err := s.apply(ctx, a); err != nil {
				s.opts.Logger.Error("activation not applied; the previous bundle keeps serving", "revision", a.Revision, "err", err)
			}
		}
		sub.Close()
	}
}

func (s *Syncer) apply(ctx context.Context, a store.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Service.Revision() == a.Revision || a.Seq <= s.applied && a.Seq != 0 {
		return nil
	}
	b, err := s.opts.Store.Bundle(ctx, a.Revision)
	if err != nil {
		s.opts.Metrics.failures.Inc()
		return fmt.Errorf("load bundle %s: %w", short(a.Revision), err)
	}
	pb, err := policy.ReadTarGz(b.Source, bytes.NewReader(b.Tarball), s.opts.Limits)
	if err != nil {
		s.opts.Metrics.failures.Inc()
		return fmt.Errorf("read bundle %s: %w", short(a.Revision), err)
	}
	if pb.Revision != a.Revision {
		s.opts.Metrics.failures.Inc()
		return fmt.Errorf("stored bundle %s has revision %s: the store is corrupt", short(a.Revision), short(pb.Revision))
	}
	if s.opts.Verifier != nil {
		if err := s.opts.Verifier.Verify(pb); err != nil {
			s.opts.Metrics.failures.Inc()
			return err
		}
	}
	if _, err := s.opts.Service.Activate(ctx, pb); err != nil {
		s.opts.Metrics.failures.Inc()
		return err
	}
	s.applied = max(s.applied, a.Seq)
	lag := time.Since(a.At)
	s.opts.Metrics.lag.Observe(lag.Seconds())
	s.opts.Logger.Info("activation applied", "revision", a.Revision, "by", a.By, "seq", a.Seq, "lag_ms", lag.Milliseconds())
	return nil
}

func short(rev string) string { return rev[:min(12, len(rev))] }

// Metrics are the syncer's Prometheus metrics. The active revision itself
// is gavel_policy_bundle_info{revision}, one per replica.
type Metrics struct {
	lag      prometheus.Histogram
	failures prometheus.Counter
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_bundle_activation_lag_seconds",
			Help:    "Time from an activation being recorded to this replica serving it.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_bundle_activation_failures_total",
			Help: "Activations this replica could not apply (the previous bundle kept serving).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.failures)
	}
	return m
}
