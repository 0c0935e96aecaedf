package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/gavel-dev/gavel/policy"
)

// The caller's trace, as a W3C traceparent (sampled) and its parts.
const (
	callerTrace      = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan       = "00f067aa0ba902b7"
	callerParent     = "00-" + callerTrace + "-" + callerSpan + "-01"
	callerUnsampled  = "00-" + callerTrace + "-" + callerSpan + "-00"
	otherTrace       = "0af7651916cd43dd8448eb211c80319c"
	otherTraceParent = "00-" + otherTrace + "-b7ad6b7169203331-01"
)

var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// tracing is a real SDK tracer provider that keeps its spans in memory.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// logBuffer collects JSON log lines, safe for the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// decisionLine is the "authz decision" log line of decision id.
func (b *logBuffer) decisionLine(t *testing.T, id string) map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == "authz decision" && m["decision_id"] == id {
			return m
		}
	}
	t.Fatalf("no log line for decision %s in\n%s", id, b.buf.String())
	return nil
}

func debugLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func spansNamed(exp *tracetest.InMemoryExporter, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// checkTraced asserts what one traced decision left: one decision span in
// trace wantTrace (under parent wantParent, when given), an audit record
// and a log line carrying its trace and span ids, and the span's
// attributes.
func checkTraced(t *testing.T, exp *tracetest.InMemoryExporter, recent *policy.Recent, logs *logBuffer, resp *authv3.CheckResponse, wantTrace, wantParent string) tracetest.SpanStub {
	t.Helper()
	spans := spansNamed(exp, SpanCheck)
	if len(spans) != 1 {
		t.Fatalf("%d %s spans, want 1: %+v", len(spans), SpanCheck, exp.GetSpans())
	}
	span := spans[0]
	id := metaString(resp, "decision_id")
	if got := span.SpanContext.TraceID().String(); wantTrace != "" && got != wantTrace {
		t.Errorf("decision span in trace %s, want the caller's %s (a new trace was started)", got, wantTrace)
	}
	if wantParent != "" && span.Parent.SpanID().String() != wantParent {
		t.Errorf("decision span's parent %s, want %s", span.Parent.SpanID(), wantParent)
	}
	if got := attr(span, AttrDecisionID).AsString(); got != id {
		t.Errorf("span %s = %q, want the decision id %q", AttrDecisionID, got, id)
	}
	for k, want := range map[attribute.Key]string{
		AttrResult: "allowed", AttrReasonCode: "policy_allowed", AttrEntry: DefaultEntry, attrMethod: "GET", attrPath: "/api/v1/orders",
	} {
		if got := attr(span, k).Emit(); got != want {
			t.Errorf("span %s = %q, want %q", k, got, want)
		}
	}
	if attr(span, AttrRevision).AsString() == "" || attr(span, AttrCached).Type() != attribute.BOOL {
		t.Errorf("span attributes %v: want the policy revision and cached", span.Attributes)
	}
	rec, ok := recent.Get(id)
	if !ok {
		t.Fatalf("no audit record for decision %s", id)
	}
	traceID, spanID := span.SpanContext.TraceID().String(), span.SpanContext.SpanID().String()
	if rec.TraceID != traceID || rec.SpanID != spanID {
		t.Errorf("audit record trace %q span %q, want %s %s", rec.TraceID, rec.SpanID, traceID, spanID)
	}
	line := logs.decisionLine(t, id)
	if line["trace_id"] != traceID || line["span_id"] != spanID {
		t.Errorf("log line %v: want trace_id %s, span_id %s", line, traceID, spanID)
	}
	return span
}

func editorRequest(headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{"x-api-key": "k-editor"}
	for k, v := range headers {
		h[k] = v
	}
	return checkRequest("GET", "/api/v1/orders?token=secret", h)
}

// The downstream request's traceparent, in the CheckRequest, is the
// parent of the decision span when nothing closer is given: gavel never
// starts a new trace for a request that carries one (opa-envoy-plugin#681).
func TestTraceCheckContinuesRequestTraceparent(t *testing.T) {
	tp, exp := tracing(t)
	recent, logs := policy.NewRecent(10), &logBuffer{}
	s := NewServer(newService(t), Options{Logger: debugLogger(logs), Audit: recent, TracerProvider: tp})
	resp, err := s.Check(t.Context(), editorRequest(map[string]string{"traceparent": callerParent, "tracestate": "vendor=x"}))
	if err != nil {
		t.Fatal(err)
	}
	span := checkTraced(t, exp, recent, logs, resp, callerTrace, callerSpan)
	if !span.Parent.IsRemote() || span.SpanKind != trace.SpanKindServer {
		t.Errorf("parent remote %v, kind %v: want a server span under the remote caller", span.Parent.IsRemote(), span.SpanKind)
	}
	if got := span.SpanContext.TraceState().Get("vendor"); got != "x" {
		t.Errorf("tracestate vendor = %q, want x (carried from the caller)", got)
	}
	if p := attr(span, attrPath).AsString(); p != "/api/v1/orders" {
		t.Errorf("url.path %q: the query stays out of the span", p)
	}
}

// Over a real gRPC server and client: Envoy, when it traces, propagates
// its own ext_authz span in the gRPC metadata, and that span is the
// decision's parent, before the request's headers; when the metadata
// carries none, the request's traceparent is the parent, also with an
// otelgrpc server handler in front, whose own span started a new trace
// (opa-envoy-plugin#681).
func TestTraceCheckContinuesGRPCMetadata(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		envoyTraces, otelgrpcSrv bool
	}{
		{"metadata", true, false},
		{"metadata, otelgrpc server", true, true},
		{"headers only", false, false},
		{"headers only, otelgrpc server", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, exp := tracing(t)
			recent, logs := policy.NewRecent(10), &logBuffer{}
			s := NewServer(newService(t), Options{Logger: debugLogger(logs), Audit: recent, TracerProvider: tp})
			var gopts GRPCOptions
			if tc.otelgrpcSrv {
				gopts.ServerOptions = []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
					otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(w3c)))}
			}
			conn, _ := startGRPC(t, s, gopts)
			// The client plays Envoy: when it traces, its ext_authz client
			// span goes out in the metadata, through otelgrpc's client
			// handler.
			dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
			if tc.envoyTraces {
				dial = append(dial, grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(w3c))))
			}
			envoy, err := grpc.NewClient(conn.Target(), dial...)
			if err != nil {
				t.Fatal(err)
			}
			defer envoy.Close()
			ctx, root := tp.Tracer("envoy").Start(t.Context(), "ingress")
			// With Envoy tracing, the request's own traceparent names
			// another trace here: the metadata's must win.
			req := editorRequest(map[string]string{"traceparent": otherTraceParent})
			if !tc.envoyTraces {
				req = editorRequest(map[string]string{"traceparent": callerParent})
			}
			resp, err := authv3.NewAuthorizationClient(envoy).Check(ctx, req)
			root.End()
			if err != nil {
				t.Fatal(err)
			}
			wantTrace, wantParent := callerTrace, callerSpan
			if tc.envoyTraces {
				var client tracetest.SpanStub
				for _, sp := range exp.GetSpans() {
					if sp.SpanKind == trace.SpanKindClient {
						client = sp
					}
				}
				wantTrace, wantParent = root.SpanContext().TraceID().String(), client.SpanContext.SpanID().String()
			}
			span := checkTraced(t, exp, recent, logs, resp, wantTrace, wantParent)
			if !span.Parent.IsRemote() || span.SpanKind != trace.SpanKindServer {
				t.Errorf("parent remote %v, kind %v: want a server span under the remote caller", span.Parent.IsRemote(), span.SpanKind)
			}
		})
	}
}

// With no trace context anywhere, a decision starts a new trace, and its
// record carries it.
func TestTraceCheckNewRoot(t *testing.T) {
	tp, exp := tracing(t)
	recent, logs := policy.NewRecent(10), &logBuffer{}
	s := NewServer(newService(t), Options{Logger: debugLogger(logs), Audit: recent, TracerProvider: tp})
	resp, err := s.Check(t.Context(), editorRequest(nil))
	if err != nil {
		t.Fatal(err)
	}
	span := checkTraced(t, exp, recent, logs, resp, "", "")
	if span.Parent.IsValid() {
		t.Errorf("a new decision has parent %v", span.Parent)
	}
}

// With tracing off there are no spans, and the record and log line carry
// the caller's trace id (no span id: gavel made no span), so the record
// still joins the caller's trace. A request with no trace has none.
func TestTracingOff(t *testing.T) {
	for _, tc := range []struct {
		name, traceparent, wantTrace string
	}{{"caller's trace", callerParent, callerTrace}, {"no trace", "", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			recent, logs := policy.NewRecent(10), &logBuffer{}
			s := NewServer(newService(t), Options{Logger: debugLogger(logs), Audit: recent})
			h := map[string]string{}
			if tc.traceparent != "" {
				h["traceparent"] = tc.traceparent
			}
			resp, _ := s.Check(t.Context(), editorRequest(h))
			id := metaString(resp, "decision_id")
			rec, _ := recent.Get(id)
			if rec.TraceID != tc.wantTrace || rec.SpanID != "" {
				t.Errorf("record trace %q span %q, want %q and none", rec.TraceID, rec.SpanID, tc.wantTrace)
			}
			line := logs.decisionLine(t, id)
			if got, _ := line["trace_id"].(string); got != tc.wantTrace || line["span_id"] != nil {
				t.Errorf("log line %v, want trace_id %q and no span_id", line, tc.wantTrace)
			}
		})
	}
}

// A caller that chose not to sample is followed: no span is exported, and
// the record keeps the trace id (and no span id) all the same.
func TestTraceCheckUnsampledParent(t *testing.T) {
	tp, exp := tracing(t)
	recent := policy.NewRecent(10)
	s := NewServer(newService(t), Options{Logger: discardLogger, Audit: recent, TracerProvider: tp})
	resp, _ := s.Check(t.Context(), editorRequest(map[string]string{"traceparent": callerUnsampled}))
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported under an unsampled parent", n)
	}
	rec, _ := recent.Get(metaString(resp, "decision_id"))
	if rec.TraceID != callerTrace || rec.SpanID != "" {
		t.Errorf("record trace %q span %q, want %s and none", rec.TraceID, rec.SpanID, callerTrace)
	}
}

// The HTTP authorization endpoints continue the original request's
// traceparent, which the proxy forwards: directly, and under the HTTP
// server span when the API is traced with otelhttp.
func TestTraceHTTPAuthz(t *testing.T) {
	for _, tc := range []struct {
		name     string
		otelhttp bool
	}{{"nginx headers", false}, {"under otelhttp", true}} {
		t.Run(tc.name, func(t *testing.T) {
			tp, exp := tracing(t)
			recent, logs := policy.NewRecent(10), &logBuffer{}
			s := NewServer(newService(t), Options{Logger: debugLogger(logs), Audit: recent, TracerProvider: tp})
			var h http.Handler = s.HTTPHandler(HTTPOptions{})
			if tc.otelhttp {
				h = otelhttp.NewHandler(h, "authz", otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(w3c))
			}
			r := authzRequest(t, "nginx", "GET", "/api/v1/orders", map[string]string{"X-Api-Key": "k-editor", "Traceparent": callerParent}, "")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			spans := spansNamed(exp, SpanCheck)
			if len(spans) != 1 {
				t.Fatalf("%d decision spans", len(spans))
			}
			span := spans[0]
			wantParent := callerSpan
			if tc.otelhttp {
				var server tracetest.SpanStubs
				for _, sp := range exp.GetSpans() {
					if sp.Name != SpanCheck {
						server = append(server, sp)
					}
				}
				if len(server) != 1 || server[0].Parent.SpanID().String() != callerSpan {
					t.Fatalf("HTTP server span %+v not under the caller's", server)
				}
				wantParent = server[0].SpanContext.SpanID().String()
			}
			if span.SpanContext.TraceID().String() != callerTrace || span.Parent.SpanID().String() != wantParent {
				t.Errorf("decision span trace %s parent %s, want %s %s", span.SpanContext.TraceID(), span.Parent.SpanID(), callerTrace, wantParent)
			}
			id := w.Header().Get("X-Gavel-Decision-Id")
			if rec, _ := recent.Get(id); rec.TraceID != callerTrace || rec.SpanID != span.SpanContext.SpanID().String() || rec.Source != policy.SourceHTTP {
				t.Errorf("record %+v, want trace %s", rec, callerTrace)
			}
		})
	}
}

// The metadata carrier reads what a gRPC client sent.
func TestTraceMetadataCarrier(t *testing.T) {
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs("traceparent", callerParent, "baggage", "k=v"))
	c := metadataCarrier{ctx}
	if c.Get("traceparent") != callerParent || c.Get("nope") != "" || len(c.Keys()) != 2 {
		t.Errorf("carrier Get %q, Keys %v", c.Get("traceparent"), c.Keys())
	}
}
