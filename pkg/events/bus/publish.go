package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
)

// Publisher puts events on the stream and waits for JetStream's ack, so that
// an event counts as published only once it is stored (on a quorum of
// replicas in a cluster).
type Publisher struct {
	js jetstream.JetStream
	// expect names the stream the acks must come from; built once, as an
	// option is a closure allocated per call.
	expect jetstream.PublishOpt
}

// NewPublisher returns a publisher that expects the acks to come from stream
// (empty: DefaultStream), guarding against a subject captured elsewhere.
func NewPublisher(js jetstream.JetStream, stream string) *Publisher {
	if stream == "" {
		stream = DefaultStream
	}
	return &Publisher{js: js, expect: jetstream.WithExpectStream(stream)}
}

// Publish stores e and reports whether JetStream had already stored an event
// with the same id inside its duplicate window.
//
// Publish runs in a producer span, child of the span in ctx (or, without
// one, of the trace e already carries, as when an event is re-published),
// and the event goes out carrying that span's context as its traceparent, so
// that every consumer's span is a child of this publish.
func (p *Publisher) Publish(ctx context.Context, e events.Event) (duplicate bool, err error) {
	subject, _ := events.SubjectOf(e)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = events.ExtractTrace(ctx, e)
	}
	ctx, span := startPublish(ctx, subject, e.ID(), e.Type())
	defer func() { endPublish(span, err) }()
	if span.SpanContext().IsValid() {
		// A copy: the caller's event shares its extensions map with e.
		e = e.Clone()
		events.InjectTrace(ctx, &e)
	}
	return p.publish(ctx, e)
}

// PublishNew builds the event spec describes inside the publish span, then
// stores it as Publish does: the event is born carrying the span's context,
// with none of the copying Publish must do to a caller's event. It is the
// hot path of ingest, one event per webhook.
func (p *Publisher) PublishNew(ctx context.Context, spec events.Spec) (e events.Event, duplicate bool, err error) {
	subject, err := events.Subject(spec.Type, spec.Environment)
	if err != nil {
		return events.Event{}, false, err
	}
	ctx, span := startPublish(ctx, subject, spec.ID, string(spec.Type))
	defer func() { endPublish(span, err) }()
	if e, err = events.New(ctx, spec); err != nil {
		return events.Event{}, false, err
	}
	duplicate, err = p.publish(ctx, e)
	return e, duplicate, err
}

// startPublish starts the producer span of one event, named and attributed
// by the OpenTelemetry messaging conventions: "{operation} {destination}"
// (a subject is low-cardinality: type and environment). The attributes are
// built only for a span that records (without an exporter none does).
func startPublish(ctx context.Context, subject, id, eventType string) (context.Context, trace.Span) {
	ctx, span := events.Tracer.Start(ctx, "publish "+subject, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(subject),
			semconv.MessagingMessageID(id),
			attribute.String("cloudevents.event_type", eventType),
		)
	}
	return ctx, span
}

func endPublish(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
	}
	span.End()
}

// publish stores e and waits for the ack of the expected stream.
func (p *Publisher) publish(ctx context.Context, e events.Event) (duplicate bool, err error) {
	m, err := events.ToMsg(e)
	if err != nil {
		return false, err
	}
	ack, err := p.js.PublishMsg(ctx, m, p.expect)
	if err != nil {
		return false, fmt.Errorf("publish %s %s: %w", e.Type(), e.ID(), err)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
	return ack.Duplicate, nil
}
