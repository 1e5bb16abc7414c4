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
	js     jetstream.JetStream
	stream string
}

// NewPublisher returns a publisher that expects the acks to come from stream
// (empty: DefaultStream), guarding against a subject captured elsewhere.
func NewPublisher(js jetstream.JetStream, stream string) *Publisher {
	if stream == "" {
		stream = DefaultStream
	}
	return &Publisher{js: js, stream: stream}
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
	// Named and attributed by the OpenTelemetry messaging conventions:
	// "{operation} {destination}"; a subject is low-cardinality (type and
	// environment).
	ctx, span := events.Tracer.Start(ctx, "publish "+subject,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(subject),
			semconv.MessagingMessageID(e.ID()),
			attribute.String("cloudevents.event_type", e.Type()),
		))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "publish failed")
		}
		span.End()
	}()
	if span.SpanContext().IsValid() {
		// A copy: the caller's event shares its extensions map with e.
		e = e.Clone()
		events.InjectTrace(ctx, &e)
	}
	m, err := events.ToMsg(e)
	if err != nil {
		return false, err
	}
	ack, err := p.js.PublishMsg(ctx, m, jetstream.WithExpectStream(p.stream))
	if err != nil {
		return false, fmt.Errorf("publish %s %s: %w", e.Type(), e.ID(), err)
	}
	span.SetAttributes(attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
	return ack.Duplicate, nil
}
