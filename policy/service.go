package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Options configure a [Service]. Zero values mean defaults.
type Options struct {
	Cache   CacheOptions
	Compile CompileOptions
	// DryRun lists entry points whose decisions are computed, logged and
	// counted, but never enforced, in addition to those the bundle marks.
	DryRun []string
	// EvalTimeout bounds one evaluation (default 100 ms, under Envoy's
	// ext_authz timeout, so gavel denies with reason code timeout before
	// Envoy gives up). A cache hit is not evaluated and takes no timer.
	EvalTimeout time.Duration
	// Metrics defaults to unregistered metrics.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Service answers decisions from the active engine, through the cache. It
// is safe for concurrent use; activation swaps the engine atomically, and a
// bundle that fails to compile leaves the previous engine serving.
type Service struct {
	engine  atomic.Pointer[Engine]
	cache   *Cache
	dryRun  map[string]bool
	timeout time.Duration
	compile CompileOptions
	metrics *Metrics
	log     *slog.Logger
}

// NewService builds a service with no active bundle: until [Service.Activate]
// succeeds every decision fails with ErrNoActiveBundle.
func NewService(opts Options) *Service {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.EvalTimeout <= 0 {
		opts.EvalTimeout = 100 * time.Millisecond
	}
	s := &Service{
		timeout: opts.EvalTimeout,
		cache:   NewCache(opts.Cache, opts.Metrics),
		dryRun:  map[string]bool{},
		compile: opts.Compile,
		metrics: opts.Metrics,
		log:     opts.Logger,
	}
	for _, p := range opts.DryRun {
		if ref, err := EntryPointRef(p); err == nil {
			s.dryRun[EntryPointPath(ref)] = true
		}
	}
	return s
}

// Engine returns the active engine, or nil.
func (s *Service) Engine() *Engine { return s.engine.Load() }

// Revision is the active bundle's revision, or "".
func (s *Service) Revision() string {
	if e := s.engine.Load(); e != nil {
		return e.revision
	}
	return ""
}

// Activate compiles b and, on success, makes it the active engine. On
// failure the previous engine keeps serving and the error carries the
// compiler's message.
func (s *Service) Activate(ctx context.Context, b *Bundle) (*Engine, error) {
	start := time.Now()
	e, err := Compile(ctx, b, s.compile)
	if err != nil {
		s.metrics.activations.WithLabelValues("rejected").Inc()
		s.log.Error("bundle rejected", "source", b.Source, "revision", b.ShortRevision(), "err", err,
			"serving", shortRevision(s.Revision()))
		return nil, err
	}
	old := s.engine.Swap(e)
	if s.cache != nil {
		s.cache.Purge()
	}
	s.metrics.activations.WithLabelValues("ok").Inc()
	if old != nil {
		s.metrics.bundleInfo.DeleteLabelValues(old.revision, old.source)
	}
	s.metrics.bundleInfo.WithLabelValues(e.revision, e.source).Set(1)
	s.metrics.entryCacheable.Reset()
	for _, ep := range e.EntryPoints() {
		s.logEntryPoint(e, ep)
	}
	s.log.Info("bundle active", "source", b.Source, "revision", e.revision,
		"entry_points", len(e.EntryPoints()), "compile_ms", time.Since(start).Milliseconds())
	return e, nil
}

func (s *Service) logEntryPoint(e *Engine, ep *EntryPoint) {
	v := 0.0
	if ep.Cacheable() {
		v = 1
	}
	s.metrics.entryCacheable.WithLabelValues(ep.Path).Set(v)
	dry := ep.Config.DryRun || s.dryRun[ep.Path]
	if ep.Cacheable() {
		s.log.Info("entry point cached", "entry", ep.Path, "key", len(ep.Config.CacheKey), "dry_run", dry,
			"revision", shortRevision(e.revision))
		return
	}
	s.log.Warn("entry point not cached", "entry", ep.Path, "why", ep.NotCacheable, "dry_run", dry,
		"revision", shortRevision(e.revision))
}

// Decide answers the entry point at path for in: only entry points the
// bundle declares or the service was configured with may be asked (a rule
// that is a helper or a test is not a decision). It answers from the cache
// when the
// entry point is cacheable and the key is present, else by evaluation. The
// returned decision carries a fresh ID, the revision, and whether it was
// cached or is a dry run. Errors are classified by [ReasonCode]; the
// decision returned with an error still names the entry point, the revision
// and whether the entry point is a dry run.
func (s *Service) Decide(ctx context.Context, path string, in Input) (Decision, error) {
	e := s.engine.Load()
	if e == nil {
		s.metrics.evalErrors.WithLabelValues(ReasonNoBundle).Inc()
		return Decision{Entry: path, DryRun: s.isDryRun(path)}, ErrNoActiveBundle
	}
	ep, err := e.ServedEntryPoint(path)
	if err != nil {
		s.metrics.evalErrors.WithLabelValues(ReasonCode(err)).Inc()
		return Decision{Entry: path, Revision: e.revision, DryRun: s.isDryRun(path)}, err
	}
	d, err := s.decide(ctx, e, ep, in)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = errors.Join(ctxErr, err)
		}
		s.metrics.evalErrors.WithLabelValues(ReasonCode(err)).Inc()
		return Decision{Entry: ep.Path, Revision: e.revision, DryRun: ep.Config.DryRun || s.dryRun[ep.Path]}, err
	}
	d.ID = NewDecisionID()
	d.DryRun = d.DryRun || s.dryRun[ep.Path]
	d.Redaction = ep.redaction
	return d, nil
}

// Query evaluates a served entry point whose result is data, not a
// decision (see [Engine.Query]), under the evaluation timeout.
func (s *Service) Query(ctx context.Context, path string, in Input) (any, error) {
	e := s.engine.Load()
	if e == nil {
		return nil, ErrNoActiveBundle
	}
	ctx, cancel := context.WithTimeout(ctx, s.evalTimeout(ctx))
	defer cancel()
	v, err := e.Query(ctx, path, in)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = errors.Join(ctxErr, err)
		}
	}
	return v, err
}

type evalTimeoutKey struct{}

// WithEvalTimeout returns ctx asking decisions made with it to be bounded
// by d instead of the service's EvalTimeout: agent hooks have seconds where
// Envoy has a few hundred milliseconds, and validating a large file takes
// longer than a request check.
func WithEvalTimeout(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, evalTimeoutKey{}, d)
}

func (s *Service) evalTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(evalTimeoutKey{}).(time.Duration); ok {
		return d
	}
	return s.timeout
}

// NewDecisionID returns a fresh decision id (a random UUID), for records of
// decisions that failed before the service could number them.
func NewDecisionID() string { return uuid.NewString() }

// isDryRun reports whether Options.DryRun lists path, in any form
// [EntryPointRef] accepts ("svc/allow", "data.svc.allow").
func (s *Service) isDryRun(path string) bool {
	if s.dryRun[path] {
		return true
	}
	ref, err := EntryPointRef(path)
	return err == nil && s.dryRun[EntryPointPath(ref)]
}

func (s *Service) decide(ctx context.Context, e *Engine, ep *EntryPoint, in Input) (Decision, error) {
	if !ep.Cacheable() {
		if s.cache != nil {
			s.metrics.cacheBypass.Inc()
		}
		return s.eval(ctx, e, ep, in)
	}
	vals, err := findValues(ep.Config.CacheKey, in)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	var key Key
	if s.cache != nil {
		key = hashKey(e.revision, ep.Path, vals)
		if d, ok := s.cache.get(ctx, key, ep.Config.CacheTTL); ok {
			d.Cached = true
			return d, nil
		}
	}
	evalIn := in
	if ep.projectable {
		evalIn = project(ep.Config.CacheKey, ep.keep, vals)
	}
	d, err := s.eval(ctx, e, ep, evalIn)
	if err != nil || s.cache == nil {
		return d, err
	}
	ttl := d.TTL
	if c := ep.Config.CacheTTL; c > 0 && (ttl <= 0 || c < ttl) {
		ttl = c
	}
	s.cache.Set(context.WithoutCancel(ctx), key, d, ttl)
	return d, nil
}

func (s *Service) eval(ctx context.Context, e *Engine, ep *EntryPoint, in Input) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, s.evalTimeout(ctx))
	defer cancel()
	start := time.Now()
	d, err := e.eval(ctx, ep, in)
	s.metrics.evalDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		// OPA reports a cancelled evaluation in its own error type; say
		// which deadline ended it.
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = errors.Join(ctxErr, err)
		}
	}
	return d, err
}

// Reason codes name why a decision failed; they double as metric labels.
const (
	ReasonNoBundle        = "no_bundle"
	ReasonTimeout         = "timeout"
	ReasonCanceled        = "canceled"
	ReasonUndefined       = "undefined_decision"
	ReasonUnknownEntry    = "unknown_entry_point"
	ReasonInvalidDecision = "invalid_decision"
	ReasonEvalError       = "eval_error"
	ReasonBadInput        = "bad_input"
)

// ReasonCode classifies a decision error.
func ReasonCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNoActiveBundle):
		return ReasonNoBundle
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, ErrUndefined):
		return ReasonUndefined
	case errors.Is(err, ErrUnknownEntry):
		return ReasonUnknownEntry
	case errors.Is(err, ErrInvalidDecision):
		return ReasonInvalidDecision
	case errors.Is(err, ErrBadInput):
		return ReasonBadInput
	}
	return ReasonEvalError
}
