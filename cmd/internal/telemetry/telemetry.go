// Package telemetry sets up gavel's OpenTelemetry tracing: a tracer
// provider that exports spans over OTLP (gRPC or HTTP) when an endpoint is
// configured, and W3C trace context and baggage propagation. Tracing is off
// by default; then the provider is OpenTelemetry's no-op one and the
// decision path pays nothing for spans. Only cmd imports this package: the
// rest of gavel depends on the OpenTelemetry API, never on the SDK.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Config is what the tracing flags set. The zero value is tracing off.
type Config struct {
	// Endpoint is the OTLP receiver: host:port (plaintext) or a URL
	// (http:// plaintext, https:// TLS). Empty: OTEL_EXPORTER_OTLP_ENDPOINT
	// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT when set, else tracing is off.
	Endpoint string
	// Protocol is grpc (default) or http (OTLP/HTTP protobuf).
	Protocol string
	// SampleRatio is the share of new traces sampled (default 1). A span
	// whose caller gave a parent follows the parent's sampling decision.
	SampleRatio float64
}

// Flags registers --otlp-endpoint, --otlp-protocol and --trace-sample-ratio.
func (c *Config) Flags(f *pflag.FlagSet) {
	f.StringVar(&c.Endpoint, "otlp-endpoint", "", "OTLP trace receiver, host:port or http(s)://host:port; tracing is off when empty and OTEL_EXPORTER_OTLP_ENDPOINT is unset")
	f.StringVar(&c.Protocol, "otlp-protocol", "grpc", "OTLP protocol: grpc or http")
	f.Float64Var(&c.SampleRatio, "trace-sample-ratio", 1, "share of new traces sampled, 0 to 1; a request that carries a trace follows its parent's decision")
}

// Tracing is the tracer provider and propagator gavel's parts are given.
type Tracing struct {
	// Provider is nil when tracing is off.
	Provider trace.TracerProvider
	// Propagator reads and writes W3C traceparent, tracestate and baggage.
	// It is set when tracing is off too: the trace a caller gave still
	// goes into the audit record and the logs.
	Propagator propagation.TextMapPropagator
	// Shutdown flushes the spans not yet exported and stops the exporter.
	Shutdown func(context.Context) error
}

// Enabled reports whether spans are exported.
func (t Tracing) Enabled() bool { return t.Provider != nil }

// Propagator is W3C trace context and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup builds the tracing service for the service named service (the
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES environment override it).
// When tracing is off it returns a Tracing whose Provider is nil.
func Setup(ctx context.Context, c Config, service, version string) (Tracing, error) {
	t := Tracing{Propagator: Propagator(), Shutdown: func(context.Context) error { return nil }}
	if c.Endpoint == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return t, nil
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return t, fmt.Errorf("--trace-sample-ratio %g: want a number from 0 to 1", c.SampleRatio)
	}
	exp, err := newExporter(ctx, c)
	if err != nil {
		return t, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return t, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	)
	t.Provider, t.Shutdown = tp, tp.Shutdown
	return t, nil
}

func newExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	endpoint, isURL, err := parseEndpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(c.Protocol) {
	case "", "grpc":
		var opts []otlptracegrpc.Option
		switch {
		case isURL:
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		case endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP gRPC exporter: %w", err)
		}
		return exp, nil
	case "http", "http/protobuf":
		var opts []otlptracehttp.Option
		switch {
		case isURL:
			opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/traces"))
		case endpoint != "":
			opts = append(opts, otlptracehttp.WithEndpoint(endpoint), otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP HTTP exporter: %w", err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("--otlp-protocol %q: want grpc or http", c.Protocol)
}

// parseEndpoint accepts host:port or an http(s) URL with no path (the
// HTTP exporter appends /v1/traces, as the OTLP specification says).
func parseEndpoint(s string) (endpoint string, isURL bool, err error) {
	if s == "" {
		return "", false, nil
	}
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/?#") || !strings.Contains(s, ":") {
			return "", false, fmt.Errorf("--otlp-endpoint %q: want host:port or http(s)://host:port", s)
		}
		return s, false, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("--otlp-endpoint %q: want host:port or http(s)://host:port", s)
	}
	return u.Scheme + "://" + u.Host, true, nil
}
