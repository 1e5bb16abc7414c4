// Package telemetry sets up logging and tracing for a Slipway process.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
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
// The standard OpenTelemetry variables configure it:
//
//   - OTEL_TRACES_EXPORTER: "otlp" exports, "none" does not; unset, Slipway
//     exports when an OTLP endpoint is set;
//   - OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, their
//     _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE…: read by the exporter;
//   - OTEL_EXPORTER_OTLP_PROTOCOL (or _TRACES_PROTOCOL): "http/protobuf"
//     (default) or "grpc";
//   - OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: the resource (service.name
//     defaults to serviceName, service.version to the binary's version);
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: read by the SDK; the
//     default is parentbased_always_on;
//   - OTEL_BSP_*: the batch span processor's settings.
//
// Without an exporter (and without OTEL_TRACES_SAMPLER or a span processor)
// spans still get their own ids, so trace ids propagate through the events,
// but nothing is recorded: see propagateOnly. Extra span processors are
// added as they are (tests).
func SetupTracing(ctx context.Context, serviceName string, processors ...sdktrace.SpanProcessor) (shutdown func(context.Context) error, err error) {
	exp, err := exporterFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if exp == nil && len(processors) == 0 && os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		otel.SetTracerProvider(propagateOnly{})
		return func(context.Context) error { return nil }, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(
			semconv.ServiceName(orDefault(serviceName, "slipway")),
			semconv.ServiceVersion(buildinfo.Version()),
		),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES still yields the rest.
		otel.Handle(err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	for _, p := range processors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// exporterFromEnv returns the OTLP span exporter the environment asks for,
// or nil.
func exporterFromEnv(ctx context.Context) (sdktrace.SpanExporter, error) {
	switch v := strings.TrimSpace(strings.ToLower(os.Getenv("OTEL_TRACES_EXPORTER"))); v {
	case "none":
		return nil, nil
	case "otlp":
	case "":
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil
		}
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", v)
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use http/protobuf or grpc", protocol)
	}
}
