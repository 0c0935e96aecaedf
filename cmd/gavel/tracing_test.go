package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-dev/gavel/cmd/internal/telemetry"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// collector is an OTLP trace receiver that keeps what it is sent.
type collector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func (c *collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.keep(req)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func (c *collector) keep(req *collectorpb.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.services = append(c.services, kv.Value.GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
}

// span is the received span named name in trace traceID, if any.
func (c *collector) span(name, traceID string) (*tracepb.Span, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if s.Name == name && hex.EncodeToString(s.TraceId) == traceID {
			return s, c.services
		}
	}
	return nil, nil
}

// serveGRPC receives OTLP over gRPC on a loopback port.
func (c *collector) serveGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(gs, c)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return ln.Addr().String()
}

// serveHTTP receives OTLP/HTTP protobuf at /v1/traces.
func (c *collector) serveHTTP(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectorpb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "want an OTLP protobuf export at /v1/traces", http.StatusBadRequest)
			return
		}
		c.keep(&req)
		b, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func stringAttr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// decisionsByTrace is GET /v1/decisions?trace_id=.
func decisionsByTrace(t *testing.T, g *gavelProc, key, traceID string) []policy.Record {
	t.Helper()
	resp, err := getWithKey("http://"+g.info.HTTPAddr+"/v1/decisions?trace_id="+traceID, key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page store.DecisionPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/decisions?trace_id=%s: %d %v", traceID, resp.StatusCode, err)
	}
	return page.Records
}

// Follow one request from Envoy to its audit record by trace id: Envoy's
// Check carries the downstream request's traceparent; gavel serve, tracing
// over OTLP (gRPC and HTTP), exports the decision span in that trace,
// under that parent, and GET /v1/decisions?trace_id= returns the audit
// record of the decision. A hook call with a traceparent goes the same way.
func TestTracingOTLPFollowsEnvoyToAudit(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // export within milliseconds
	for _, protocol := range []string{"grpc", "http"} {
		t.Run(protocol, func(t *testing.T) {
			var c collector
			endpoint := c.serveGRPC(t)
			if protocol == "http" {
				endpoint = c.serveHTTP(t)
			}
			g := startGavel(t, "--bundle", writeBundle(t, t.TempDir()), "--otlp-endpoint", endpoint, "--otlp-protocol", protocol)
			key := useAdminKey(t, g)

			// Envoy's Check, with the downstream request's trace context.
			const traceID, parentID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
			conn, err := grpc.NewClient(g.info.AuthzAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := checkRequest("GET", "/api/v1/orders", "k-viewer")
			req.Attributes.Request.Http.Headers["traceparent"] = "00-" + traceID + "-" + parentID + "-01"
			resp, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), req)
			if err != nil || resp.Status.Code != 0 {
				t.Fatalf("Check: %v %v", resp, err)
			}
			decisionID := resp.DynamicMetadata.AsMap()["decision_id"].(string)

			var span *tracepb.Span
			var services []string
			waitFor(t, 10*time.Second, "the collector to receive the decision span", func() bool {
				span, services = c.span("gavel.authz.check", traceID)
				return span != nil
			})
			if got := hex.EncodeToString(span.ParentSpanId); got != parentID {
				t.Errorf("decision span's parent %s, want the request's %s", got, parentID)
			}
			if got := stringAttr(span.Attributes, "gavel.decision_id"); got != decisionID {
				t.Errorf("span gavel.decision_id %q, want %q", got, decisionID)
			}
			if !strings.Contains(strings.Join(services, ","), "gavel") {
				t.Errorf("service.name %v, want gavel", services)
			}

			// From the trace to the audit record.
			var recs []policy.Record
			waitFor(t, 10*time.Second, "the audit record of trace "+traceID, func() bool {
				recs = decisionsByTrace(t, g, key, traceID)
				return len(recs) > 0
			})
			if len(recs) != 1 || recs[0].ID != decisionID || recs[0].SpanID != hex.EncodeToString(span.SpanId) || recs[0].Source != policy.SourceEnvoy {
				t.Errorf("records of trace %s: %+v, want decision %s with span %x", traceID, recs, decisionID, span.SpanId)
			}

			// A hook call, traced the same way.
			const hookTrace = "a3ce929d0e0e47364bf92f3577b34da6"
			hreq, _ := http.NewRequest(http.MethodPost, "http://"+g.info.HTTPAddr+"/v1/hooks/claude-code",
				strings.NewReader(`{"hook_event_name":"PreToolUse","session_id":"s","tool_use_id":"t","tool_name":"Bash","tool_input":{"command":"ls"}}`))
			hreq.Header.Set("Authorization", "Bearer "+g.info.HookToken)
			hreq.Header.Set("Traceparent", "00-"+hookTrace+"-"+parentID+"-01")
			hresp, err := http.DefaultClient.Do(hreq)
			if err != nil || hresp.StatusCode != 200 {
				t.Fatalf("hook: %v %v", hresp, err)
			}
			hresp.Body.Close()
			waitFor(t, 10*time.Second, "the hook span and its record", func() bool {
				s, _ := c.span("gavel.hook", hookTrace)
				return s != nil && len(decisionsByTrace(t, g, key, hookTrace)) == 1
			})
		})
	}
}

// The tracing flags are checked before anything starts.
func TestTracingFlagErrors(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	for _, tc := range []struct {
		cfg  telemetry.Config
		want string
	}{
		{telemetry.Config{Endpoint: "collector", Protocol: "grpc", SampleRatio: 1}, "--otlp-endpoint"},
		{telemetry.Config{Endpoint: "ftp://collector:4317", Protocol: "grpc", SampleRatio: 1}, "--otlp-endpoint"},
		{telemetry.Config{Endpoint: "http://collector:4318/v1/traces", Protocol: "http", SampleRatio: 1}, "--otlp-endpoint"},
		{telemetry.Config{Endpoint: "127.0.0.1:4317", Protocol: "thrift", SampleRatio: 1}, "--otlp-protocol"},
		{telemetry.Config{Endpoint: "127.0.0.1:4317", Protocol: "grpc", SampleRatio: 2}, "--trace-sample-ratio"},
	} {
		_, err := telemetry.Setup(t.Context(), tc.cfg, "gavel", "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	tr, err := telemetry.Setup(t.Context(), telemetry.Config{Protocol: "grpc", SampleRatio: 1}, "gavel", "test")
	if err != nil || tr.Enabled() || tr.Propagator == nil {
		t.Errorf("no endpoint: %+v %v, want tracing off with a propagator", tr, err)
	}
}
