package policy

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// TraceIDs are the ids an audit record and a log line carry for a decision
// made under ctx: the trace of its span, and the span itself when gavel
// traced and sampled it. With tracing off, a caller's trace id is still
// returned (with no span id), so the record joins the caller's trace.
func TraceIDs(ctx context.Context) (traceID, spanID string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	traceID = sc.TraceID().String()
	if !sc.IsRemote() && sc.IsSampled() {
		spanID = sc.SpanID().String()
	}
	return traceID, spanID
}
