package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/gavel-dev/gavel/api/bundles"
	"github.com/gavel-dev/gavel/api/decisions"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/audit"
	"github.com/gavel-dev/gavel/store/breaker"
	"github.com/gavel-dev/gavel/store/bundlesync"
)

// stateConfig configures what gavel serve keeps in its store beyond keys
// and leases: the audit trail and the bundle lifecycle.
type stateConfig struct {
	audit          bool
	auditInput     string
	auditRetention time.Duration
	auditQueue     int
	auditFlush     time.Duration
	verifyKey      string
	verifyKeyID    string
	verifyAlg      string
}

func (c *stateConfig) flags(f *pflag.FlagSet) {
	f.BoolVar(&c.audit, "audit", true, "record every decision in the audit trail (false: none is kept; for measuring what auditing costs)")
	f.StringVar(&c.auditInput, "audit-input", "all", "which decisions' inputs the audit trail keeps (redacted): all, denied (deny and error), or none (the digest stays)")
	f.DurationVar(&c.auditRetention, "audit-retention", audit.DefaultRetention, "how long the audit trail keeps a decision (0 keeps everything)")
	f.DurationVar(&c.auditFlush, "audit-flush-interval", 100*time.Millisecond, "the longest an audit record waits for its batch to fill")
	f.IntVar(&c.auditQueue, "audit-queue", 1<<16, "audit records that may wait to be written; beyond it records are dropped and counted, never waited for")
	f.StringVar(&c.verifyKey, "bundle-verification-key", "", "PEM public key: uploaded bundles must be signed with it (OPA bundle signing)")
	f.StringVar(&c.verifyKeyID, "bundle-verification-key-id", "default", "the key id (kid) bundle signatures name")
	f.StringVar(&c.verifyAlg, "bundle-verification-alg", "RS256", "the bundle signature algorithm")
}

// state is the store-backed part of gavel serve: the audit writer every
// decision goes to, the bundle lifecycle API, the syncer that keeps this
// replica on the active revision, and the audit trail API.
type state struct {
	audit   *audit.Writer
	auditOn bool
	// inputs says which records keep their input: all, denied, none.
	inputs    string
	syncer    *bundlesync.Syncer
	st        store.Store
	retention time.Duration
	bundles   http.Handler
	decisions http.Handler
	log       *slog.Logger
}

// newState builds it, and switches svc to the store's active revision when
// there is one (a replica that starts serves what the others serve). It
// returns nil without a store.
func newState(ctx context.Context, c stateConfig, st store.Store, svc *policy.Service, compile policy.CompileOptions,
	bus store.Bus, breakers *breaker.Metrics, dataDir string, reg prometheus.Registerer, log *slog.Logger) (*state, error) {
	if st == nil || svc == nil {
		return nil, nil
	}
	switch c.auditInput {
	case "all", "denied", "none":
	default:
		return nil, fmt.Errorf("--audit-input %q: want all, denied or none", c.auditInput)
	}
	var verifier *policy.Verifier
	if c.verifyKey != "" {
		pem, err := os.ReadFile(c.verifyKey)
		if err != nil {
			return nil, fmt.Errorf("--bundle-verification-key: %w", err)
		}
		if verifier, err = policy.NewVerifier(pem, c.verifyKeyID, c.verifyAlg); err != nil {
			return nil, fmt.Errorf("--bundle-verification-key: %w", err)
		}
	}
	br := breaker.New("store", breaker.Options{Metrics: breakers})
	br.OnChange(func(name string, from, to breaker.State) {
		log.Warn("circuit breaker", "name", name, "from", from.String(), "to", to.String())
	})
	if bus != nil {
		publishBreakerEvents(br, bus)
	}
	w, err := audit.New(audit.Options{
		Store:         st,
		Breaker:       br,
		SpillDir:      filepath.Join(dataDir, "audit-spill"),
		QueueSize:     c.auditQueue,
		FlushInterval: c.auditFlush,
		Metrics:       audit.NewMetrics(reg),
		Logger:        log.With("component", "audit"),
	})
	if err != nil {
		return nil, err
	}
	s := &state{
		audit:     w,
		auditOn:   c.audit,
		inputs:    c.auditInput,
		st:        st,
		retention: c.auditRetention,
		syncer: bundlesync.New(bundlesync.Options{Store: st, Service: svc, Verifier: verifier, Bus: bus,
			Metrics: bundlesync.NewMetrics(reg), Logger: log.With("component", "bundles")}),
		decisions: decisions.Handler(st, log),
		log:       log,
	}
	active, err := s.syncer.Start(ctx)
	switch {
	case err != nil:
		log.Error("the store's active bundle cannot serve; serving the configured bundle", "err", err)
	case active:
		log.Info("serving the store's active bundle", "revision", svc.Revision())
	}
	s.bundles = bundles.Handler(bundles.Options{
		Store:   st,
		Check:   bundles.CheckOptions{Verifier: verifier, Compile: compile},
		Events:  bus,
		Replica: replicaID(),
		Logger:  log.With("component", "bundles"),
	})
	return s, nil
}

// sink is where decisions are recorded (nil without a store, or with
// --audit=false).
func (s *state) sink() policy.Sink {
	if s == nil || !s.auditOn {
		return nil
	}
	if s.inputs == "all" {
		return s.audit
	}
	return inputFilter{next: s.audit, deniedOnly: s.inputs == "denied"}
}

// inputFilter drops the inputs the audit trail is not to keep, before the
// writer would render them.
type inputFilter struct {
	next       policy.Sink
	deniedOnly bool
}

func (f inputFilter) Record(r policy.Record) {
	if !f.deniedOnly || (r.Outcome != "deny" && r.Outcome != "error") {
		r.Input, r.InputFunc = nil, nil
	}
	f.next.Record(r)
}

// run follows activations and enforces retention until ctx ends, and
// writes audit records until auditCtx ends: that one ends after the
// servers stopped, so the last decisions are written too.
func (s *state) run(ctx, auditCtx context.Context) error {
	if s == nil {
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.syncer.Run(ctx) })
	wg.Go(func() { audit.Retain(ctx, s.st, s.retention, 0, s.log.With("component", "audit")) })
	err := s.audit.Run(auditCtx)
	wg.Wait()
	return err
}

// sinks joins the non-nil sinks.
func sinks(ss ...policy.Sink) policy.Sink {
	var out policy.Sinks
	for _, s := range ss {
		if s != nil {
			out = append(out, s)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}
