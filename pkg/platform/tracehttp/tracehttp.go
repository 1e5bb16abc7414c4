// Package tracehttp makes the OpenTelemetry client spans of Slipway's
// outgoing HTTP requests (notifiers, the Marathon client, registries) the
// way the semantic conventions name them, and carries their context to the
// server in traceparent so that a receiver joins the trace.
//
// A span is named "{method} {route}" when the caller gave a low-cardinality
// route template (WithRoute: "PUT /v2/apps/{id}"), else "{method}" — never
// after the URL, which may hold an app id, a digest or a secret. It carries
// http.request.method, url.full (redacted: a webhook's URL is a secret, a
// registry's upload URL holds a session), server.address, server.port and,
// once answered, http.response.status_code; an answer of 400 or more, or no
// answer, is an error with error.type.
package tracehttp

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

var tracer = otel.Tracer("github.com/slipway-cd/slipway/pkg/platform/tracehttp")

// W3C trace context whatever the process-wide propagator: receivers expect
// traceparent.
var traceContext = propagation.TraceContext{}

type routeKey struct{}

// WithRoute returns ctx under which requests are named after route, the
// request path's template ("/v2/apps/{id}").
func WithRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey{}, route)
}

// Transport returns base (http.DefaultTransport when nil) with every
// request that is part of a trace made in a client span. redact shows a
// URL as url.full may show it (config.RedactURL, or RedactSecretURL for a
// URL that is a secret as a whole, the default). A request outside any trace (a poll, an
// event stream) makes no trace of its own.
func Transport(base http.RoundTripper, redact func(string) string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if redact == nil {
		redact = config.RedactSecretURL
	}
	return &transport{base: base, redact: redact}
}

type transport struct {
	base   http.RoundTripper
	redact func(string) string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return t.base.RoundTrip(req)
	}
	m := Method(req.Method)
	name := m.Value.AsString()
	if name == semconv.HTTPRequestMethodOther.Value.AsString() {
		name = "HTTP" // the conventions' name for a method they do not know
	}
	if route, _ := ctx.Value(routeKey{}).(string); route != "" {
		name += " " + route
	}
	ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(t.attributes(req)...))
	defer span.End()
	// A RoundTripper must not change the caller's request.
	req = req.Clone(ctx)
	traceContext.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		// The error's text may repeat the URL: only its type is recorded.
		span.SetAttributes(semconv.ErrorType(err))
		span.SetStatus(codes.Error, "no answer")
		return resp, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, "")
	}
	return resp, nil
}

func (t *transport) attributes(req *http.Request) []attribute.KeyValue {
	u := req.URL
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	attrs := []attribute.KeyValue{
		Method(req.Method),
		semconv.ServerAddress(host),
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	attrs = append(attrs, semconv.URLFull(t.redact(u.String())))
	return attrs
}

// Method is http.request.method: the known methods as they are, anything
// else _OTHER (the conventions keep the attribute low-cardinality).
func Method(m string) attribute.KeyValue {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return semconv.HTTPRequestMethodKey.String(m)
	}
	return semconv.HTTPRequestMethodOther
}
