package hooks

import (
	"context"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gavel-dev/gavel/policy"
)

// SpanHook names the span of one hook decision.
const SpanHook = "gavel.hook"

// Attributes of the hook span.
const (
	AttrEvent      = attribute.Key("gavel.hook.event")
	AttrTool       = attribute.Key("gavel.hook.tool")
	AttrDecisionID = attribute.Key("gavel.decision_id")
	AttrOutcome    = attribute.Key("gavel.outcome")
	AttrRules      = attribute.Key("gavel.rule_ids")
	AttrRevision   = attribute.Key("gavel.policy.revision")
	AttrReasonCode = attribute.Key("gavel.reason_code")
)

const tracerName = "github.com/gavel-dev/gavel/api/hooks"

// startSpan starts the hook decision's span. Its parent is the span in the
// request's context (the HTTP server span, when the API is traced), else
// the traceparent header the caller sent; with neither it starts a new
// trace. With tracing off the span is nil and ctx carries only the
// caller's trace context, if it gave one.
func (h *handler) startSpan(r *http.Request, c Call) (context.Context, trace.Span) {
	ctx := r.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() && r.Header.Get("Traceparent") != "" {
		ctx = h.opts.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	if h.tracer == nil {
		return ctx, nil
	}
	kind := trace.SpanKindServer
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsRemote() {
		kind = trace.SpanKindInternal
	}
	return h.tracer.Start(ctx, SpanHook, trace.WithSpanKind(kind), trace.WithAttributes(
		AttrEvent.String(c.Event.Name),
		AttrTool.String(c.ToolName()),
	))
}

func endSpan(span trace.Span, d policy.Decision, outcome string, err error) {
	span.SetAttributes(
		AttrDecisionID.String(d.ID),
		AttrOutcome.String(outcome),
		AttrRules.StringSlice(d.RuleIDs),
		AttrRevision.String(d.Revision),
	)
	if err != nil {
		code := policy.ReasonCode(err)
		span.SetAttributes(AttrReasonCode.String(code))
		span.SetStatus(codes.Error, code)
	}
	span.End()
}

// traceAttrs are the log attributes of ctx's trace, as key-value pairs.
func traceAttrs(ctx context.Context) []any {
	t, s := policy.TraceIDs(ctx)
	var out []any
	if t != "" {
		out = append(out, slog.String("trace_id", t))
	}
	if s != "" {
		out = append(out, slog.String("span_id", s))
	}
	return out
}
