package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/gavel-dev/gavel/cmd/internal/telemetry"
)

// startTracing sets up tracing from the flags; stop flushes the spans not
// yet exported (bounded by a few seconds) and is safe to call when tracing
// is off.
func startTracing(ctx context.Context, c telemetry.Config, log *slog.Logger) (t telemetry.Tracing, stop func(), err error) {
	t, err = telemetry.Setup(ctx, c, "gavel", buildVersion())
	if err != nil {
		return t, func() {}, err
	}
	if !t.Enabled() {
		return t, func() {}, nil
	}
	log.Info("tracing on: spans go over OTLP", "endpoint", firstNonEmptyString(c.Endpoint, "from OTEL_EXPORTER_OTLP_ENDPOINT"),
		"protocol", c.Protocol, "sample_ratio", c.SampleRatio)
	return t, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed", "err", err)
		}
	}, nil
}

// httpTracing wraps the HTTP API in a server span per request, continuing
// the caller's traceparent; scrapes and probes are not traced. It returns
// h itself when tracing is off.
func httpTracing(t telemetry.Tracing, h http.Handler) http.Handler {
	if !t.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "gavel.http",
		otelhttp.WithTracerProvider(t.Provider),
		otelhttp.WithPropagators(t.Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/metrics", "/healthz", "/readyz":
				return false
			}
			return true
		}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }),
	)
}

func firstNonEmptyString(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
