package extauthz

import (
	"context"
	"log/slog"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gavel-dev/gavel/policy"
)

// Decider answers a policy entry point for an input: policy.Service.
type Decider interface {
	Decide(ctx context.Context, entry string, in policy.Input) (policy.Decision, error)
}

// DefaultEntry is the entry point used when a route names none, as in
// opa-envoy-plugin.
const DefaultEntry = "envoy/authz/allow"

// PolicyExtension is the context extension a route sets to name its entry
// point.
const PolicyExtension = "policy"

// Options configure a [Server]. Zero values mean defaults.
type Options struct {
	// DefaultEntry is the entry point for routes that name none
	// (default envoy/authz/allow).
	DefaultEntry string
	// Timeout, when set, bounds each whole decision with a timer of its
	// own. Off by default: the policy service bounds evaluation itself
	// (policy.Options.EvalTimeout), and a cache hit needs no timer.
	Timeout time.Duration
	// MaxInFlight bounds concurrent decisions; past it a check is denied
	// with 429 and reason code "overloaded" (default 4096).
	MaxInFlight int
	Input       InputOptions
	// Audit, when set, receives a record of every answer. It must not
	// block (store/audit queues and writes in batches).
	Audit   policy.Sink
	Metrics *Metrics
	Logger  *slog.Logger
	// TracerProvider, when set, traces every decision with a span named
	// SpanCheck (see startSpan for its parent). Nil: no spans.
	TracerProvider trace.TracerProvider
	// Propagator reads a caller's trace context (default W3C traceparent
	// and baggage). It is used with tracing off too: a given trace id goes
	// into the audit record and the log line.
	Propagator propagation.TextMapPropagator
}

// Server answers Envoy's ext_authz v3 Check calls, and HTTP authorization
// requests through [Server.HTTPHandler].
type Server struct {
	authv3.UnimplementedAuthorizationServer

	decider Decider
	opts    Options
	sem     chan struct{}
	values  valueCache
	tracer  trace.Tracer // nil when tracing is off
}

// NewServer builds a server over a decider.
func NewServer(d Decider, opts Options) *Server {
	if opts.DefaultEntry == "" {
		opts.DefaultEntry = DefaultEntry
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4096
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
	s := &Server{decider: d, opts: opts, sem: make(chan struct{}, opts.MaxInFlight)}
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	return s
}

// Check implements envoy.service.auth.v3.Authorization. It never returns a
// gRPC error: every failure is a denial in the response, so Envoy's
// failure_mode_allow can never turn a gavel fault into an allow.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	entry := req.GetAttributes().GetContextExtensions()[PolicyExtension]
	in, err := BuildInput(req, s.opts.Input)
	http := req.GetAttributes().GetRequest().GetHttp()
	a := s.answer(ctx, "grpc", entry, in, err, requestInfo{
		id: http.GetId(), method: http.GetMethod(), path: http.GetPath(), host: http.GetHost(), start: start,
		headers: propagation.MapCarrier(http.GetHeaders()),
	})
	resp := buildResponse(a, s.values.get)
	s.opts.Metrics.observe("grpc", a, time.Since(start).Seconds())
	return resp, nil
}

type requestInfo struct {
	id, method, path, host string
	start                  time.Time
	// headers are the authorized request's, where its traceparent is.
	headers propagation.TextMapCarrier
	// traceID and spanID are the decision's (policy.TraceIDs).
	traceID, spanID string
}

// answer decides and logs; buildErr is the input builder's error, if any.
func (s *Server) answer(ctx context.Context, api, entry string, in policy.Input, buildErr error, ri requestInfo) Answer {
	if entry == "" {
		entry = s.opts.DefaultEntry
	}
	ctx, span := s.startSpan(ctx, api, ri)
	ri.traceID, ri.spanID = policy.TraceIDs(ctx)
	var d policy.Decision
	err := buildErr
	if err == nil {
		select {
		case s.sem <- struct{}{}:
			g := s.opts.Metrics.inFlight(api)
			g.Inc()
			if s.opts.Timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
				d, err = s.decider.Decide(ctx, entry, in)
				cancel()
			} else {
				d, err = s.decider.Decide(ctx, entry, in)
			}
			g.Dec()
			<-s.sem
		default:
			err = errOverloaded
		}
	}
	if d.Entry == "" {
		d.Entry = entry
	}
	if d.ID == "" {
		d.ID = uuid.NewString()
	}
	a := Classify(d, err)
	s.log(ctx, api, a, ri)
	if s.opts.Audit != nil {
		rec := record(api, a, ri)
		if err == nil {
			redaction := d.Redaction
			rec.InputFunc = func() ([]byte, error) { return policy.RedactedInput(in, redaction) }
		}
		s.opts.Audit.Record(rec)
	}
	if span != nil {
		endSpan(span, a)
	}
	return a
}

// record is the audit record of an answer. The principal is the one the
// policy named in the x-gavel-principal header it adds, when it did; the
// correlation id is Envoy's request id; the trace id joins it to the
// decision's trace.
func record(api string, a Answer, ri requestInfo) policy.Record {
	d := a.Decision
	rec := policy.Record{
		ID:            d.ID,
		Time:          time.Now().UTC(),
		Source:        policy.SourceEnvoy,
		Action:        ri.method,
		Resource:      ri.host + ri.path,
		RuleIDs:       d.RuleIDs,
		Entry:         d.Entry,
		Revision:      d.Revision,
		DryRun:        d.DryRun,
		Cached:        d.Cached,
		CorrelationID: ri.id,
		TraceID:       ri.traceID,
		SpanID:        ri.spanID,
	}
	if api == "http" {
		rec.Source = policy.SourceHTTP
	}
	if !ri.start.IsZero() {
		rec.Latency = time.Since(ri.start)
	}
	for _, h := range d.Headers {
		if strings.EqualFold(h.Name, "x-gavel-principal") {
			rec.Principal = h.Value
		}
	}
	switch a.Result {
	case Allowed:
		rec.Outcome = "allow"
	case Denied, WouldDeny:
		rec.Outcome = "deny"
	default:
		rec.Outcome, rec.ErrorCode = "error", a.Code
	}
	if a.Reason != "" {
		rec.Reasons = []string{a.Reason}
	}
	return rec
}

var errOverloaded = &overloadedError{}

type overloadedError struct{}

func (*overloadedError) Error() string { return "too many checks in flight" }

func (s *Server) log(ctx context.Context, api string, a Answer, ri requestInfo) {
	level := slog.LevelDebug
	switch a.Result {
	case Denied, WouldDeny:
		level = slog.LevelInfo
	case Errored:
		level = slog.LevelWarn
	}
	if !s.opts.Logger.Enabled(ctx, level) {
		return
	}
	d := a.Decision
	attrs := []slog.Attr{
		slog.String("decision_id", d.ID),
		slog.String("api", api),
		slog.String("result", string(a.Result)),
		slog.String("reason_code", a.Code),
		slog.String("reason", a.Reason),
		slog.Any("rule_ids", d.RuleIDs),
		slog.String("entry", d.Entry),
		slog.String("revision", d.Revision),
		slog.Bool("cached", d.Cached),
		slog.Int("status", a.Status),
		slog.String("request_id", ri.id),
		slog.String("method", ri.method),
		slog.String("path", ri.path),
		slog.String("host", ri.host),
	}
	if ri.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", ri.traceID))
	}
	if ri.spanID != "" {
		attrs = append(attrs, slog.String("span_id", ri.spanID))
	}
	s.opts.Logger.LogAttrs(ctx, level, "authz decision", attrs...)
}
