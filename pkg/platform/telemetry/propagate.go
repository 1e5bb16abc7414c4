package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// propagateOnly is the tracer provider of a process with nowhere to send
// spans: no exporter, no span processor. Its spans record nothing, but each
// gets a span context of its own as the SDK would give it (the parent's
// trace id, or a new trace, sampled, under the default parentbased_always_on
// sampler; a new span id), so that trace ids still travel through the
// events' traceparent and a consumer that does export joins the same trace.
//
// Why not the SDK without processors: it records every span anyway
// (attributes, events, status, the clock twice) for nothing to read them;
// on ingest's hot path that was about 9 µs and 1.5 KB of garbage per
// webhook. The SDK cannot give a sampled span that does not record, and the
// API's noop tracer gives no new span ids.
type propagateOnly struct{ embedded.TracerProvider }

func (propagateOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return propagateTracer{} }

type propagateTracer struct{ embedded.Tracer }

// Start returns ctx with a new span context, child of the one in ctx. The
// options (kind, attributes, links) have nothing to go to.
func (propagateTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: trace.FlagsSampled}
	if parent := trace.SpanContextFromContext(ctx); parent.IsValid() {
		// parentbased: a parent's decision (and its tracestate) is kept.
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	// The API's non-recording span that carries ctx's span context.
	return ctx, trace.SpanFromContext(ctx)
}

// The ids are random, as W3C trace context asks; math/rand/v2's generator
// is seeded from the OS, safe for concurrent use and does not lock.
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
