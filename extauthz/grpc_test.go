package extauthz

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/gavel-dev/gavel/policy"
)

// startGRPC serves s on a loopback port and dials it; both stop at cleanup.
func startGRPC(t *testing.T, s *Server, opts GRPCOptions) (*grpc.ClientConn, *health.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs, hs := NewGRPCServer(s, opts)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn, hs
}

// checkRequest is what Envoy sends for method path with the given headers.
func checkRequest(method, path string, headers map[string]string) *authv3.CheckRequest {
	req := httpRequest(method, path, headers, "")
	req.Attributes.Source = &authv3.AttributeContext_Peer{Address: socketAddress("10.0.0.7", 53412)}
	return req
}

func metaString(resp *authv3.CheckResponse, key string) string {
	return resp.GetDynamicMetadata().GetFields()[key].GetStringValue()
}

func TestGRPCCheck(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewServer(newService(t), Options{Logger: discardLogger, Metrics: NewMetrics(reg)})
	conn, _ := startGRPC(t, s, GRPCOptions{})
	client := authv3.NewAuthorizationClient(conn)

	withPolicy := checkRequest("GET", "/api/v1/orders", map[string]string{"x-api-key": "k-editor"})
	withPolicy.Attributes.ContextExtensions = map[string]string{PolicyExtension: "envoy/authz/nope"}

	for _, tc := range []struct {
		name       string
		req        *authv3.CheckRequest
		wantCode   code.Code
		wantStatus int // of the denied response; 0 for an OK response
		wantReason string
		wantHeader string // an OK header, or a piece of the denial body
	}{
		{"allow", checkRequest("GET", "/api/v1/orders", map[string]string{"x-api-key": "k-editor"}),
			code.Code_OK, 0, ReasonPolicyAllowed, "x-gavel-principal=ed"},
		{"public route", checkRequest("GET", "/healthz", nil), code.Code_OK, 0, ReasonPolicyAllowed, ""},
		{"deny without a key", checkRequest("GET", "/api/v1/orders", nil),
			code.Code_PERMISSION_DENIED, 401, ReasonPolicyDenied, "missing API key"},
		{"deny by role", checkRequest("DELETE", "/api/v1/orders/7", map[string]string{"x-api-key": "k-editor"}),
			code.Code_PERMISSION_DENIED, 403, ReasonPolicyDenied, "needs one of the roles"},
		{"bad request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}},
			code.Code_UNAVAILABLE, 400, ReasonBadRequest, "no attributes.request.http"},
		{"unknown entry point", withPolicy, code.Code_UNAVAILABLE, 500, policy.ReasonUnknownEntry, "unknown entry point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(t.Context(), tc.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error %v: every answer must be a normal response", err)
			}
			if got := code.Code(resp.GetStatus().GetCode()); got != tc.wantCode {
				t.Errorf("status %v, want %v (%s)", got, tc.wantCode, resp.GetStatus().GetMessage())
			}
			if got := metaString(resp, "reason_code"); got != tc.wantReason {
				t.Errorf("reason_code %q, want %q", got, tc.wantReason)
			}
			if metaString(resp, "decision_id") == "" {
				t.Error("no decision_id")
			}
			if tc.wantStatus == 0 {
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Fatalf("want an OK response, got %v", resp)
				}
				if tc.wantHeader != "" {
					name, value, _ := strings.Cut(tc.wantHeader, "=")
					if !slices.ContainsFunc(ok.GetHeaders(), func(h *corev3.HeaderValueOption) bool {
						return h.GetHeader().GetKey() == name && h.GetHeader().GetValue() == value
					}) {
						t.Errorf("OK headers %v lack %s", ok.GetHeaders(), tc.wantHeader)
					}
				}
				return
			}
			denied := resp.GetDeniedResponse()
			if got := int(denied.GetStatus().GetCode()); got != tc.wantStatus {
				t.Errorf("denied with %d, want %d", got, tc.wantStatus)
			}
			if !strings.Contains(denied.GetBody(), tc.wantHeader) {
				t.Errorf("body %q lacks %q", denied.GetBody(), tc.wantHeader)
			}
		})
	}

	// One count per answer, labelled by result and reason.
	for _, want := range []struct {
		result, reason string
		n              float64
	}{
		{"allowed", ReasonPolicyAllowed, 2},
		{"denied", ReasonPolicyDenied, 2},
		{"error", ReasonBadRequest, 1},
		{"error", policy.ReasonUnknownEntry, 1},
	} {
		labels := map[string]string{"api": "grpc", "result": want.result, "reason": want.reason}
		if got := metricValue(t, reg, "gavel_authz_decisions_total", labels); got != want.n {
			t.Errorf("gavel_authz_decisions_total%v = %v, want %v", labels, got, want.n)
		}
	}
	if got := metricValue(t, reg, "gavel_authz_check_duration_seconds", map[string]string{"api": "grpc", "result": "allowed"}); got != 2 {
		t.Errorf("check durations observed for allowed checks: %v, want 2", got)
	}
}

// metricValue is a counter's value, or a histogram's sample count, in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestGRPCHealth(t *testing.T) {
	s := NewServer(newService(t), Options{Logger: discardLogger})
	conn, hs := startGRPC(t, s, GRPCOptions{})
	client := healthpb.NewHealthClient(conn)
	services := []string{"", authv3.Authorization_ServiceDesc.ServiceName}

	check := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range services {
			resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("health %q: %v", svc, err)
			}
			if resp.GetStatus() != want {
				t.Errorf("health %q = %v, want %v", svc, resp.GetStatus(), want)
			}
		}
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING)
	for _, svc := range services {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	check(healthpb.HealthCheckResponse_SERVING)

	_, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("health of an unknown service: %v, want NotFound", err)
	}
}

func TestGRPCReflection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enabled bool
	}{{"enabled", true}, {"disabled", false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(newService(t), Options{Logger: discardLogger})
			conn, _ := startGRPC(t, s, GRPCOptions{Reflection: tc.enabled})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
			}); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
				// io.EOF: the server already ended the stream; Recv says why.
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if !tc.enabled {
				if status.Code(err) != codes.Unimplemented {
					t.Fatalf("reflection disabled: Recv = %v, %v; want Unimplemented", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, svc := range resp.GetListServicesResponse().GetService() {
				names = append(names, svc.GetName())
			}
			for _, want := range []string{authv3.Authorization_ServiceDesc.ServiceName, healthpb.Health_ServiceDesc.ServiceName} {
				if !slices.Contains(names, want) {
					t.Errorf("reflection lists %v, want %s among them", names, want)
				}
			}
			_ = stream.CloseSend()
		})
	}
}

// blockingDecider never decides: it waits for its context to end.
type blockingDecider struct{ deadline chan time.Time }

func (b blockingDecider) Decide(ctx context.Context, _ string, _ policy.Input) (policy.Decision, error) {
	if dl, ok := ctx.Deadline(); ok && b.deadline != nil {
		b.deadline <- dl
	}
	<-ctx.Done()
	return policy.Decision{}, ctx.Err()
}

// gateDecider allows once released, and says when a decision has started.
type gateDecider struct {
	entered chan struct{}
	release chan struct{}
}

func (g gateDecider) Decide(ctx context.Context, entry string, _ policy.Input) (policy.Decision, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return policy.Decision{Outcome: policy.Allow, Entry: entry, Revision: "gate"}, nil
	case <-ctx.Done():
		return policy.Decision{}, ctx.Err()
	}
}

func TestGRPCFailClosed(t *testing.T) {
	allowed := checkRequest("GET", "/api/v1/orders", map[string]string{"x-api-key": "k-editor"})

	t.Run("timeout", func(t *testing.T) {
		const timeout = 50 * time.Millisecond
		deadlines := make(chan time.Time, 1)
		conn, _ := startGRPC(t, NewServer(blockingDecider{deadlines}, Options{Timeout: timeout, Logger: discardLogger}), GRPCOptions{})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // a broken server must not hang the test
		defer cancel()
		start := time.Now()
		resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, allowed)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		elapsed := time.Since(start)
		if dl := <-deadlines; dl.Sub(start) > elapsed || dl.Before(start) {
			t.Errorf("the decider's deadline is %v after the call, which was answered after %v", dl.Sub(start), elapsed)
		}
		// Answered on the server's deadline, not Envoy's: generous slack for -race on a busy machine.
		if elapsed < timeout || elapsed > timeout+5*time.Second {
			t.Errorf("answered after %v, want about the server timeout %v", elapsed, timeout)
		}
		wantDenied(t, resp, code.Code_UNAVAILABLE, 503, policy.ReasonTimeout)
	})

	t.Run("no bundle", func(t *testing.T) {
		svc := policy.NewService(policy.Options{Logger: discardLogger}) // nothing activated
		conn, _ := startGRPC(t, NewServer(svc, Options{Logger: discardLogger}), GRPCOptions{})
		resp, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), allowed)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		wantDenied(t, resp, code.Code_UNAVAILABLE, 503, policy.ReasonNoBundle)
	})

	t.Run("overloaded", func(t *testing.T) {
		gate := gateDecider{entered: make(chan struct{}, 1), release: make(chan struct{})}
		s := NewServer(gate, Options{MaxInFlight: 1, Timeout: time.Minute, Logger: discardLogger})
		conn, _ := startGRPC(t, s, GRPCOptions{})
		client := authv3.NewAuthorizationClient(conn)

		first := make(chan *authv3.CheckResponse, 1)
		go func() {
			resp, err := client.Check(t.Context(), allowed)
			if err != nil {
				t.Errorf("first Check: %v", err)
			}
			first <- resp
		}()
		<-gate.entered // the first check holds the only slot

		resp, err := client.Check(t.Context(), allowed)
		if err != nil {
			t.Fatalf("second Check: %v", err)
		}
		wantDenied(t, resp, code.Code_UNAVAILABLE, 429, ReasonOverloaded)

		close(gate.release)
		if resp := <-first; resp.GetOkResponse() == nil {
			t.Errorf("first check, once released: %v, want allowed", resp)
		}
		// The slot is free again.
		go func() { <-gate.entered }()
		if resp, err := client.Check(t.Context(), allowed); err != nil || resp.GetOkResponse() == nil {
			t.Errorf("third Check = %v, %v; want allowed", resp, err)
		}
	})
}

func wantDenied(t *testing.T, resp *authv3.CheckResponse, c code.Code, httpStatus int, reason string) {
	t.Helper()
	if got := code.Code(resp.GetStatus().GetCode()); got != c {
		t.Errorf("status %v, want %v", got, c)
	}
	denied := resp.GetDeniedResponse()
	if denied == nil {
		t.Fatalf("want a denied response, got %v", resp)
	}
	if got := int(denied.GetStatus().GetCode()); got != httpStatus {
		t.Errorf("denied with %d, want %d", got, httpStatus)
	}
	if got := metaString(resp, "reason_code"); got != reason {
		t.Errorf("reason_code %q, want %q", got, reason)
	}
	if !strings.Contains(denied.GetBody(), `"code":"`+reason+`"`) {
		t.Errorf("body %s does not name the reason %s", denied.GetBody(), reason)
	}
}
