package ingest

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/platform/tracehttp"
)

// serverSpan starts the span of one request by the OpenTelemetry
// conventions for HTTP servers: named "{method} {route}" after the route
// template, never the URL, continuing the caller's trace. path is url.path
// as it may be shown: a caller whose path holds a secret passes it
// redacted. The attributes are built only for a span that records: without
// an exporter none does, and they were a tenth of a webhook's tracing cost.
// (No sampler Slipway can be configured with decides on attributes.)
func serverSpan(c echo.Context, path string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	r := c.Request()
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := tracer.Start(ctx, r.Method+" "+c.Path(), trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(append(attrs, tracehttp.Method(r.Method), semconv.HTTPRoute(c.Path()), semconv.URLPath(path), semconv.URLScheme(c.Scheme()))...)
	}
	return ctx, span
}

// answered records the answer's status on a server span; a server span
// fails on its own errors (5xx) only.
func answered(span trace.Span, code int) {
	span.SetAttributes(semconv.HTTPResponseStatusCode(code))
	if code >= 500 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(code)))
		span.SetStatus(codes.Error, http.StatusText(code))
	}
}
