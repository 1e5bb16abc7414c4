package events

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
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
	ec := &cloudevents.EventContextV1{}
	e := Event{Context: ec}
	e.SetID(spec.ID)
	e.SetType(string(spec.Type))
	e.SetSource(spec.Source)
	e.SetSubject(spec.Subject)
	t := spec.Time
	if t.IsZero() {
		t = time.Now()
	}
	e.SetTime(t.UTC())
	// Constant names and string values: nothing for SetExtension to check.
	if spec.CausationID != "" {
		setExtension(&e, ExtCausation, spec.CausationID)
	}
	setExtension(&e, extEnvironment, spec.Environment)
	if err := e.SetData(cloudevents.ApplicationJSON, spec.Data); err != nil {
		return Event{}, fmt.Errorf("encode %s data: %w", spec.Type, err)
	}
	InjectTrace(ctx, &e)
	// Of e.Validate's checks, only two can fail here: a setter's error (a
	// blank id, a source that is no URI reference) and an empty source. The
	// setters trim the type and subject (the type is a Slipway one), and the
	// content type is application/json. e.Validate, which allocates maps and
	// parses the content type, words the error.
	if len(e.FieldErrors) > 0 || strings.TrimSpace(ec.Source.String()) == "" {
		if err := e.Validate(); err != nil {
			return Event{}, fmt.Errorf("invalid event: %w", err)
		}
	}
	return e, nil
}

// extEnvironment records the environment that selects the subject, so that a
// message can be re-published (redrive) without parsing its data.
const extEnvironment = "environment"

// EnvironmentOf returns the environment an event was published for.
func EnvironmentOf(e Event) string { return extension(e, extEnvironment) }

// CausationOf returns the id of the event that caused e, or "".
func CausationOf(e Event) string { return extension(e, ExtCausation) }

// extension returns the string extension attribute name of e, or "".
func extension(e Event, name string) string {
	s, _ := stringExtension(e, name)
	return s
}

// stringExtension returns the extension attribute name of e and whether it
// is there as a string. e.Extensions() copies the whole map on every call; a
// 1.0 context is read in place.
func stringExtension(e Event, name string) (string, bool) {
	var v any
	if ec, ok := e.Context.(*cloudevents.EventContextV1); ok {
		v = ec.Extensions[name]
	} else {
		v = e.Extensions()[name]
	}
	s, ok := v.(string)
	return s, ok
}

// setExtension sets the string extension attribute name (a valid, lowercase
// name) of e: what e.SetExtension does for such a name and value, without
// validating them again.
func setExtension(e *Event, name, value string) {
	ec, ok := e.Context.(*cloudevents.EventContextV1)
	if !ok {
		e.SetExtension(name, value)
		return
	}
	if ec.Extensions == nil {
		ec.Extensions = make(map[string]any, 4)
	}
	ec.Extensions[name] = value
	if e.FieldErrors != nil {
		delete(e.FieldErrors, "extension:"+name)
	}
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
	body, err := marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID(), err)
	}
	// The header built in one go: nats.Header keys are case-sensitive and
	// stored as given, and the values share one backing array.
	tp, hasTP := stringExtension(e, ExtTraceParent)
	ts := extension(e, ExtTraceState)
	vals := [4]string{ContentType, e.ID(), tp, ts}
	h := make(nats.Header, 4)
	h[HeaderContentType] = vals[0:1:1]
	h[HeaderMsgID] = vals[1:2:2]
	if hasTP {
		h[HeaderTraceParent] = vals[2:3:3]
	}
	if ts != "" {
		h[HeaderTraceState] = vals[3:4:4]
	}
	return &nats.Msg{Subject: subject, Header: h, Data: body}, nil
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

// InjectTrace stamps the span context of ctx on e as the traceparent (and
// tracestate) extension. Without a valid span in ctx, e is left unchanged.
//
// The values are those propagation.TraceContext{}.Inject writes (the W3C
// trace context, whatever the process-wide otel setting: the traceparent
// extension is part of the contract), formatted here without a carrier map.
func InjectTrace(ctx context.Context, e *Event) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	setExtension(e, ExtTraceParent, traceParent(sc))
	if ts := sc.TraceState().String(); ts != "" {
		setExtension(e, ExtTraceState, ts)
	}
}

// traceParent formats sc as a version 00 traceparent,
// "00-<trace id>-<span id>-<flags>", keeping only the flags the
// specification defines (sampled and random).
func traceParent(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], flags[:])
	return string(b[:])
}

// propagator reads the W3C trace context back from an event.
var propagator = propagation.TraceContext{}

// ExtractTrace returns ctx carrying the remote span context of e, so that the
// consumer's spans join the producer's trace.
func ExtractTrace(ctx context.Context, e Event) context.Context {
	tp := extension(e, ExtTraceParent)
	if tp == "" {
		// What the propagator returns without a traceparent.
		return ctx
	}
	return propagator.Extract(ctx, &traceCarrier{traceParent: tp, traceState: extension(e, ExtTraceState)})
}

// traceCarrier hands an event's trace context to the propagator (a
// propagation.MapCarrier would be a map per event).
type traceCarrier struct{ traceParent, traceState string }

func (c *traceCarrier) Get(key string) string {
	switch key {
	case HeaderTraceParent:
		return c.traceParent
	case HeaderTraceState:
		return c.traceState
	}
	return ""
}

func (c *traceCarrier) Set(key, value string) {
	switch key {
	case HeaderTraceParent:
		c.traceParent = value
	case HeaderTraceState:
		c.traceState = value
	}
}

func (c *traceCarrier) Keys() []string { return []string{HeaderTraceParent, HeaderTraceState} }

// Tracer is the tracer Slipway's event helpers use.
var Tracer = otel.Tracer("github.com/slipway-cd/slipway/pkg/events")
