package hooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/policy"
)

// DefaultEntryPoint is the agent policy's decision.
const DefaultEntryPoint = "gavel/agent/decision"

// DefaultEvalTimeout bounds one agent decision: well under gavel-hook's
// own 2 s deadline, well over what validating a large file takes.
const DefaultEvalTimeout = time.Second

// DefaultMaxBody bounds a hook body. PostToolUse carries the tool's whole
// output (a file read, a command's stdout), so it is generous.
const DefaultMaxBody = 8 << 20

// Response headers. The body is exactly Claude Code's schema; what gavel
// adds for correlation goes here.
const (
	HeaderDecisionID    = "X-Gavel-Decision-Id"
	HeaderPolicyVersion = "X-Gavel-Policy-Version"
	HeaderError         = "X-Gavel-Error"
)

// Decider answers decisions (a *policy.Service).
type Decider interface {
	Decide(ctx context.Context, path string, in policy.Input) (policy.Decision, error)
}

// Options configure [Handler].
type Options struct {
	Decider Decider
	// EntryPoint defaults to DefaultEntryPoint.
	EntryPoint string
	// MaxBody defaults to DefaultMaxBody.
	MaxBody int64
	// EvalTimeout bounds one agent decision (DefaultEvalTimeout): hooks
	// wait seconds, and PostToolUse validates whole files.
	EvalTimeout time.Duration
	// Audit receives a record of every decision (nil: none).
	Audit policy.Sink
	// Metrics default to unregistered metrics.
	Metrics *Metrics
	Logger  *slog.Logger
	// TracerProvider, when set, traces every hook decision with a span
	// named SpanHook. Nil: no spans.
	TracerProvider trace.TracerProvider
	// Propagator reads the caller's traceparent (default W3C trace context
	// and baggage), with tracing off too: its trace id goes into the audit
	// record and the log lines.
	Propagator propagation.TextMapPropagator
}

// Handler serves POST /v1/hooks/claude-code and its alias
// /v1/hooks/claude-code/{Event}. It expects an authenticator in front of it
// (the principal comes from the request context).
func Handler(opts Options) http.Handler {
	if opts.EntryPoint == "" {
		opts.EntryPoint = DefaultEntryPoint
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.EvalTimeout <= 0 {
		opts.EvalTimeout = DefaultEvalTimeout
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Propagator == nil {
		opts.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	h := &handler{opts: opts}
	if opts.TracerProvider != nil {
		h.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hooks/claude-code", h.serve)
	mux.HandleFunc("POST /v1/hooks/claude-code/{event}", h.serve)
	return mux
}

type handler struct {
	opts   Options
	tracer trace.Tracer // nil when tracing is off
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		msg := "cannot read the body: " + err.Error()
		if errors.As(err, &tooBig) {
			msg = "body is over the limit of " + strconv.FormatInt(tooBig.Limit, 10) + " bytes"
		}
		h.opts.Metrics.rejected("too_large")
		reply.Error(w, http.StatusBadRequest, msg)
		return
	}
	c, err := Decode(body, r.PathValue("event"))
	if err != nil {
		h.opts.Metrics.rejected("malformed")
		reply.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	if !c.Known {
		h.opts.Logger.Debug("hook event unknown; no opinion", "event", c.Event.Name)
		h.opts.Metrics.observe("unknown", "no_opinion", time.Since(start))
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx, span := h.startSpan(r, c)
	tr := traceAttrs(ctx)
	p, _ := auth.FromContext(ctx)
	in, err := c.Input(Meta{Principal: p, ProjectDir: r.Header.Get("X-Gavel-Project-Dir"), Transport: r.Header.Get("X-Gavel-Transport")})
	var d policy.Decision
	if err == nil {
		d, err = h.opts.Decider.Decide(policy.WithEvalTimeout(ctx, h.opts.EvalTimeout), h.opts.EntryPoint, in)
	}
	if d.ID == "" {
		d.ID = policy.NewDecisionID()
	}
	var answer []byte
	outcome := d.Outcome.String()
	if err != nil {
		code := policy.ReasonCode(err)
		outcome = "error"
		h.opts.Logger.Error("hook decision failed; failing closed", append([]any{"event", c.Event.Name, "tool", c.ToolName(),
			"reason", code, "err", err, "gating", c.Event.Gating, "decision_id", d.ID}, tr...)...)
		answer = FailClosed(c, "governance error ("+code+"): the action is blocked until policy can be evaluated")
		w.Header().Set(HeaderError, code)
	} else {
		answer = Answer(c, d)
		if d.DryRun && d.Outcome != policy.NoOpinion {
			h.opts.Logger.Info("dry run: hook decision not enforced", append([]any{"event", c.Event.Name, "tool", c.ToolName(),
				"outcome", outcome, "rules", d.RuleIDs, "decision_id", d.ID}, tr...)...)
		}
	}
	w.Header().Set(HeaderDecisionID, d.ID)
	if d.Revision != "" {
		w.Header().Set(HeaderPolicyVersion, d.Revision)
	}
	w.Header().Set("Cache-Control", "no-store")
	if answer != nil {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer)

	elapsed := time.Since(start)
	h.opts.Metrics.observe(c.Event.Name, outcome, elapsed)
	h.opts.Metrics.rules(c.Event.Name, d.RuleIDs)
	if err != nil && c.Event.Gating {
		h.opts.Metrics.failClosed.WithLabelValues(c.Event.Name).Inc()
	}
	if h.opts.Audit != nil {
		rec := record(c, p, d, err, elapsed)
		rec.TraceID, rec.SpanID = policy.TraceIDs(ctx)
		if err == nil {
			redaction := d.Redaction
			rec.InputFunc = func() ([]byte, error) { return policy.RedactedInput(in, redaction) }
		}
		h.opts.Audit.Record(rec)
	}
	if span != nil {
		endSpan(span, d, outcome, err)
	}
}

func record(c Call, p auth.Principal, d policy.Decision, err error, elapsed time.Duration) policy.Record {
	action, resource := c.Summary()
	rec := policy.Record{
		ID:            d.ID,
		Time:          time.Now().UTC(),
		Source:        policy.SourceHook,
		Principal:     p.Name,
		Action:        action,
		Resource:      resource,
		Outcome:       d.Outcome.String(),
		RuleIDs:       d.RuleIDs,
		Entry:         d.Entry,
		Revision:      d.Revision,
		DryRun:        d.DryRun,
		Cached:        d.Cached,
		Latency:       elapsed,
		CorrelationID: c.CorrelationID(),
		InputDigest:   c.Digest,
	}
	if rec.ID == "" {
		rec.ID = policy.NewDecisionID()
	}
	if err != nil {
		rec.Outcome, rec.ErrorCode = "error", policy.ReasonCode(err)
		rec.Reasons = []string{err.Error()}
	} else if r := userReason(d); r != "" {
		rec.Reasons = []string{r}
		if d.AgentReason != "" && d.AgentReason != r {
			rec.Reasons = append(rec.Reasons, d.AgentReason)
		}
	}
	return rec
}
