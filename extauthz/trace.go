package extauthz

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// SpanCheck names the span of one decision, over gRPC or HTTP.
const SpanCheck = "gavel.authz.check"

// Attributes of the decision span.
const (
	AttrDecisionID   = attribute.Key("gavel.decision_id")
	AttrResult       = attribute.Key("gavel.result")
	AttrReasonCode   = attribute.Key("gavel.reason_code")
	AttrRevision     = attribute.Key("gavel.policy.revision")
	AttrEntry        = attribute.Key("gavel.policy.entry")
	AttrCached       = attribute.Key("gavel.cached")
	AttrAPI          = attribute.Key("gavel.api")
	attrMethod       = attribute.Key("http.request.method")
	attrPath         = attribute.Key("url.path")
	attrServerAddr   = attribute.Key("server.address")
	attrResponseCode = attribute.Key("http.response.status_code")
)

const tracerName = "github.com/gavel-dev/gavel/extauthz"

// headerTraceparent is the W3C trace context header, as Envoy lower-cases
// it in a CheckRequest and as gRPC metadata keys are.
const headerTraceparent = "traceparent"

// parentContext is ctx with the span a decision continues.
//
// Over gRPC, the first of:
//  1. the trace context in the call's gRPC metadata: the span of Envoy's
//     ext_authz call, when Envoy traces;
//  2. the traceparent of the request being authorized, in the
//     CheckRequest's headers.
//
// A span already in ctx is not taken over gRPC: a gRPC server span (an
// otelgrpc stats handler) starts a new trace when the metadata carries
// none, before the CheckRequest, where the request's own trace is, has
// been read; continuing it would lose the caller's trace
// (opa-envoy-plugin#681).
//
// Over HTTP, the first of:
//  1. the span already in ctx: the HTTP server span, when the API is
//     traced (otelhttp), which continued the traceparent the proxy sent;
//  2. the traceparent in the headers the proxy forwarded.
//
// A decision starts a new trace only when none of them is there.
func (s *Server) parentContext(ctx context.Context, api string, headers propagation.TextMapCarrier) context.Context {
	if api == "grpc" {
		if len(metadata.ValueFromIncomingContext(ctx, headerTraceparent)) > 0 {
			if c := s.opts.Propagator.Extract(ctx, metadataCarrier{ctx}); trace.SpanContextFromContext(c).IsValid() {
				return c
			}
		}
	} else if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	if headers != nil && headers.Get(headerTraceparent) != "" {
		if c := s.opts.Propagator.Extract(ctx, headers); trace.SpanContextFromContext(c).IsValid() {
			return c
		}
	}
	return ctx
}

// startSpan starts the decision span under its parent (see
// parentContext). With tracing off the span is nil and ctx carries only
// the caller's trace context, if it gave one.
func (s *Server) startSpan(ctx context.Context, api string, ri requestInfo) (context.Context, trace.Span) {
	ctx = s.parentContext(ctx, api, ri.headers)
	if s.tracer == nil {
		return ctx, nil
	}
	kind := trace.SpanKindServer
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsRemote() {
		kind = trace.SpanKindInternal // under the HTTP server span
	}
	return s.tracer.Start(ctx, SpanCheck, trace.WithSpanKind(kind), trace.WithAttributes(
		AttrAPI.String(api),
		attrMethod.String(ri.method),
		attrPath.String(pathOnly(ri.path)),
		attrServerAddr.String(ri.host),
	))
}

// endSpan describes the answer on the span and ends it.
func endSpan(span trace.Span, a Answer) {
	d := a.Decision
	span.SetAttributes(
		AttrDecisionID.String(d.ID),
		AttrResult.String(string(a.Result)),
		AttrReasonCode.String(a.Code),
		AttrRevision.String(d.Revision),
		AttrEntry.String(d.Entry),
		AttrCached.Bool(d.Cached),
		attrResponseCode.Int(a.Status),
	)
	if a.Result == Errored {
		span.SetStatus(codes.Error, a.Code)
	}
	span.End()
}

// metadataCarrier reads trace context from a call's incoming gRPC
// metadata.
type metadataCarrier struct{ ctx context.Context }

func (c metadataCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (metadataCarrier) Set(string, string) {}

func (c metadataCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// pathOnly is the path without its query, which may carry secrets.
func pathOnly(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			return p[:i]
		}
	}
	return p
}
