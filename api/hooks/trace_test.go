package hooks_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/fstest"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
)

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan   = "00f067aa0ba902b7"
	callerParent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

func tracedServer(t *testing.T, opts hooks.Options) *httptest.Server {
	t.Helper()
	svc := policy.NewService(policy.Options{})
	b, err := policy.LoadFS("test", fstest.MapFS{"agent.rego": {Data: []byte(testPolicy)}}, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	opts.Decider = svc
	tokens := auth.NewTokens(map[string]auth.Principal{"tok": {Name: "dev", Roles: []string{auth.RoleAgent}}})
	srv := httptest.NewServer(tokens.Require(auth.RoleAgent, hooks.Handler(opts)))
	t.Cleanup(srv.Close)
	return srv
}

const forbidden = `{"hook_event_name":"PreToolUse","session_id":"s","tool_use_id":"t1","tool_name":"Bash","tool_input":{"command":"forbidden"}}`

// A hook decision is a span named gavel.hook under the caller's
// traceparent (or a new trace without one), described by its event, tool,
// decision id, outcome and rules; its record carries the trace.
func TestTraceHook(t *testing.T) {
	for _, tc := range []struct {
		name, traceparent string
	}{{"caller's trace", callerParent}, {"new trace", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			defer tp.Shutdown(context.Background())
			recent := policy.NewRecent(10)
			srv := tracedServer(t, hooks.Options{Audit: recent, TracerProvider: tp})
			var hdr []string
			if tc.traceparent != "" {
				hdr = []string{"Traceparent", tc.traceparent}
			}
			r := post(t, srv, "/v1/hooks/claude-code", "tok", forbidden, hdr...)
			id := r.header.Get(hooks.HeaderDecisionID)
			spans := exp.GetSpans()
			if len(spans) != 1 || spans[0].Name != hooks.SpanHook {
				t.Fatalf("spans %+v, want one %s", spans, hooks.SpanHook)
			}
			span := spans[0]
			if tc.traceparent != "" && (span.SpanContext.TraceID().String() != callerTrace || span.Parent.SpanID().String() != callerSpan) {
				t.Errorf("hook span trace %s parent %s, want %s %s", span.SpanContext.TraceID(), span.Parent.SpanID(), callerTrace, callerSpan)
			}
			if tc.traceparent == "" && span.Parent.IsValid() {
				t.Errorf("hook span has parent %v with none given", span.Parent)
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, kv := range span.Attributes {
				attrs[kv.Key] = kv.Value
			}
			if attrs[hooks.AttrEvent].AsString() != "PreToolUse" || attrs[hooks.AttrTool].AsString() != "Bash" ||
				attrs[hooks.AttrDecisionID].AsString() != id || attrs[hooks.AttrOutcome].AsString() != "deny" ||
				!slices.Equal(attrs[hooks.AttrRules].AsStringSlice(), []string{"t.forbidden"}) {
				t.Errorf("span attributes %v", span.Attributes)
			}
			rec, _ := recent.Get(id)
			if rec.TraceID != span.SpanContext.TraceID().String() || rec.SpanID != span.SpanContext.SpanID().String() {
				t.Errorf("record trace %q span %q, want the span's %s %s", rec.TraceID, rec.SpanID, span.SpanContext.TraceID(), span.SpanContext.SpanID())
			}
		})
	}
}

// With tracing off the record still carries the caller's trace id, and no
// span id.
func TestTracingOffHook(t *testing.T) {
	recent := policy.NewRecent(10)
	srv := tracedServer(t, hooks.Options{Audit: recent})
	r := post(t, srv, "/v1/hooks/claude-code", "tok", forbidden, "Traceparent", callerParent)
	rec, _ := recent.Get(r.header.Get(hooks.HeaderDecisionID))
	if rec.TraceID != callerTrace || rec.SpanID != "" {
		t.Errorf("record trace %q span %q, want %s and none", rec.TraceID, rec.SpanID, callerTrace)
	}
}
