// Package telemetry sets up logging and tracing for a Slipway process.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// NewLogger returns a structured logger as the log section says.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(orDefault(cfg.Level, "info"))))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// SetupTracing installs a tracer provider so that every webhook starts a
// trace whose context travels in the events' traceparent, and the W3C
// propagator for HTTP. It returns a shutdown function that flushes spans.
//
// Extra span processors (exporters) are passed in; without any, spans are
// still created, so trace ids propagate through the events, but go nowhere.
func SetupTracing(processors ...sdktrace.SpanProcessor) func(context.Context) error {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))}
	for _, p := range processors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown
}
