package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Extension attribute names (CloudEvents extensions are lowercase alphanumerics).
const (
	// ExtCausation holds the id of the event that caused this one.
	ExtCausation = "causationid"
	// ExtTraceParent holds the W3C trace context (Distributed Tracing extension).
	ExtTraceParent = "traceparent"
	// ExtTraceState holds the W3C tracestate, when there is one.
	ExtTraceState = "tracestate"
)

// NATS headers set on every Slipway message.
const (
	HeaderContentType = "Content-Type"
	HeaderMsgID       = "Nats-Msg-Id" // JetStream de-duplication
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
	// ContentType is the structured-mode CloudEvents media type.
	ContentType = "application/cloudevents+json"
)

// Event is a CloudEvent as the CloudEvents Go SDK models it.
type Event = cloudevents.Event

// Spec describes one event to build with New.
type Spec struct {
	// ID must be deterministic: use ID or CausedID.
	ID   string
	Type Type
	// Source is a URI reference naming the producer, e.g. "/slipway/ingest/dev-registry".
	Source string
	// Environment selects the subject's last token.
	Environment string
	// Subject is the CloudEvents subject: the image reference for image
	// events, "cluster:appId" for deployment events.
	Subject string
	// CausationID is the id of the event that caused this one, if any.
	CausationID string
	// Time defaults to now.
	Time time.Time
	Data any
}

// New builds a CloudEvent from spec and stamps it with the trace context in
// ctx (if ctx carries a span).
func New(ctx context.Context, spec Spec) (Event, error) {
	if spec.ID == "" {
		return Event{}, errors.New("event id is required")
	}
	if _, err := subjectParts(spec.Type, spec.Environment); err != nil {
		return Event{}, err
	}
	e := cloudevents.New(cloudevents.CloudEventsVersionV1)
	e.SetID(spec.ID)
	e.SetType(string(spec.Type))
	e.SetSource(spec.Source)
	e.SetSubject(spec.Subject)
	t := spec.Time
	if t.IsZero() {
		t = time.Now()
	}
	e.SetTime(t.UTC())
	if spec.CausationID != "" {
		e.SetExtension(ExtCausation, spec.CausationID)
	}
	e.SetExtension(extEnvironment, spec.Environment)
	if err := e.SetData(cloudevents.ApplicationJSON, spec.Data); err != nil {
		return Event{}, fmt.Errorf("encode %s data: %w", spec.Type, err)
	}
	InjectTrace(ctx, &e)
	if err := e.Validate(); err != nil {
		return Event{}, fmt.Errorf("invalid event: %w", err)
	}
	return e, nil
}

// extEnvironment records the environment that selects the subject, so that a
// message can be re-published (redrive) without parsing its data.
const extEnvironment = "environment"

// EnvironmentOf returns the environment an event was published for.
func EnvironmentOf(e Event) string {
	s, _ := e.Extensions()[extEnvironment].(string)
	return s
}

// CausationOf returns the id of the event that caused e, or "".
func CausationOf(e Event) string {
	s, _ := e.Extensions()[ExtCausation].(string)
	return s
}

// SubjectOf returns the NATS subject an event is published on.
func SubjectOf(e Event) (string, error) {
	return Subject(Type(e.Type()), EnvironmentOf(e))
}

// DataAs decodes the event's data into a value of type T.
func DataAs[T any](e Event) (T, error) {
	var v T
	if err := json.Unmarshal(e.Data(), &v); err != nil {
		return v, fmt.Errorf("decode %s data: %w", e.Type(), err)
	}
	return v, nil
}

// ToMsg encodes e as a NATS message in CloudEvents structured JSON mode with
// the headers of the contract.
func ToMsg(e Event) (*nats.Msg, error) {
	subject, err := SubjectOf(e)
	if err != nil {
		return nil, err
	}
	// e.MarshalJSON rather than json.Marshal(e): the latter re-scans and
	// compacts the output, a third of the cost of publishing.
	body, err := e.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID(), err)
	}
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(HeaderContentType, ContentType)
	m.Header.Set(HeaderMsgID, e.ID())
	if tp, ok := e.Extensions()[ExtTraceParent].(string); ok {
		m.Header.Set(HeaderTraceParent, tp)
	}
	if ts, ok := e.Extensions()[ExtTraceState].(string); ok && ts != "" {
		m.Header.Set(HeaderTraceState, ts)
	}
	return m, nil
}

// FromMsg decodes a structured-mode message body into an event.
func FromMsg(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("not a structured CloudEvent: %w", err)
	}
	if err := e.Validate(); err != nil {
		return Event{}, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return e, nil
}

// propagator is W3C trace context, whatever the process-wide otel setting:
// the traceparent extension is part of the contract.
var propagator = propagation.TraceContext{}

// InjectTrace stamps the span context of ctx on e as the traceparent (and
// tracestate) extension. Without a valid span in ctx, e is left unchanged.
func InjectTrace(ctx context.Context, e *Event) {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	if tp := c.Get(HeaderTraceParent); tp != "" {
		e.SetExtension(ExtTraceParent, tp)
		if ts := c.Get(HeaderTraceState); ts != "" {
			e.SetExtension(ExtTraceState, ts)
		}
	}
}

// ExtractTrace returns ctx carrying the remote span context of e, so that the
// consumer's spans join the producer's trace.
func ExtractTrace(ctx context.Context, e Event) context.Context {
	c := propagation.MapCarrier{}
	if tp, ok := e.Extensions()[ExtTraceParent].(string); ok {
		c.Set(HeaderTraceParent, tp)
	}
	if ts, ok := e.Extensions()[ExtTraceState].(string); ok {
		c.Set(HeaderTraceState, ts)
	}
	return propagator.Extract(ctx, c)
}

// Tracer is the tracer Slipway's event helpers use.
var Tracer = otel.Tracer("github.com/slipway-cd/slipway/pkg/events")
