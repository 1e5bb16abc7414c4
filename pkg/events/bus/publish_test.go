package bus_test

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

func TestPublishDuplicateIsReportedAndDeliveredOnce(t *testing.T) {
	e := start(t)
	p := bus.NewPublisher(e.js, "")
	ev := deployment(t, e.ctx, "1", "prd")
	for i, want := range []bool{false, true} {
		dup, err := p.Publish(e.ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if dup != want {
			t.Errorf("publish %d: duplicate %t, want %t", i+1, dup, want)
		}
	}
	// The stream is ordered: once the later event is handled, a second copy
	// of the first would have been handled before it.
	later := deployment(t, e.ctx, "2", "prd")
	if dup, err := p.Publish(e.ctx, later); err != nil || dup {
		t.Fatalf("publish later event: duplicate %t, %v", dup, err)
	}
	h, calls := recorder(func(call) error { return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "dedup"}, h)
	if got := recv(t, calls, "first event").id; got != ev.ID() {
		t.Errorf("first handled %s, want %s", got, ev.ID())
	}
	if got := recv(t, calls, "later event").id; got != later.ID() {
		t.Errorf("second handled %s, want the later event %s", got, later.ID())
	}
	c.Stop()
	if n := len(calls); n != 0 {
		t.Errorf("%d extra handler calls", n)
	}
}

func TestPublishSetsContractHeaders(t *testing.T) {
	e := start(t)
	ev := deployment(t, e.ctx, "1", "prd")
	e.publish(t, ev)
	m := e.storedMsg(t, 1)
	if m.Subject != "slipway.deployment.succeeded.prd" {
		t.Errorf("subject %s", m.Subject)
	}
	if got := m.Header.Get(events.HeaderMsgID); got != ev.ID() {
		t.Errorf("Nats-Msg-Id %q, want the event id", got)
	}
	if got := m.Header.Get(events.HeaderContentType); got != events.ContentType {
		t.Errorf("Content-Type %q", got)
	}
	back, err := events.FromMsg(m.Data)
	if err != nil || back.ID() != ev.ID() {
		t.Errorf("body does not decode to the event: %v", err)
	}
}

func TestPublishRefusesOtherStream(t *testing.T) {
	e := start(t)
	// The subject belongs to SLIPWAY; a publisher told to expect another
	// stream must not count the event as published.
	if _, err := bus.NewPublisher(e.js, "OTHER").Publish(e.ctx, deployment(t, e.ctx, "1", "prd")); err == nil {
		t.Error("publish succeeded against the wrong stream")
	}
}

// PublishNew stores the event its spec describes, carrying the context of
// its own producer span (a child of the caller's), as Publish would.
func TestPublishNewStoresTheEventInsideItsProducerSpan(t *testing.T) {
	e := start(t)
	p := bus.NewPublisher(e.js, "")
	ctx, parent := otel.Tracer("test").Start(e.ctx, "webhook")
	spec := events.Spec{
		ID: events.ID("test", "new"), Type: events.TypeDeploymentSucceeded, Source: "/slipway/test",
		Environment: "prd", Subject: "azure-int:/payments/api",
		Data: events.Deployment{Cluster: "azure-int", Environment: "prd", AppID: "/payments/api", Digest: "sha256:new"},
	}
	ev, dup, err := p.PublishNew(ctx, spec)
	parent.End()
	if err != nil || dup {
		t.Fatalf("PublishNew: duplicate %t, %v", dup, err)
	}
	m := e.storedMsg(t, 1)
	if m.Subject != "slipway.deployment.succeeded.prd" || m.Header.Get(events.HeaderMsgID) != spec.ID {
		t.Fatalf("stored on %s with Nats-Msg-Id %q", m.Subject, m.Header.Get(events.HeaderMsgID))
	}
	stored, err := events.FromMsg(m.Data)
	if err != nil || stored.ID() != ev.ID() || string(stored.Data()) != string(ev.Data()) {
		t.Fatalf("stored %v (%v), want the returned event", stored, err)
	}
	var producer sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == "publish slipway.deployment.succeeded.prd" && s.Parent().SpanID() == parent.SpanContext().SpanID() {
			producer = s
		}
	}
	if producer == nil {
		t.Fatal("no producer span child of the caller's span")
	}
	want := "00-" + producer.SpanContext().TraceID().String() + "-" + producer.SpanContext().SpanID().String() + "-01"
	if tp := m.Header.Get(events.HeaderTraceParent); tp != want {
		t.Errorf("traceparent header %q, want the producer span's %q", tp, want)
	}
	if tp, _ := stored.Extensions()[events.ExtTraceParent].(string); tp != want {
		t.Errorf("traceparent extension %q, want %q", tp, want)
	}
	// A repeat of the same spec is a duplicate, stored once.
	if _, dup, err := p.PublishNew(e.ctx, spec); err != nil || !dup {
		t.Errorf("repeat: duplicate %t, %v", dup, err)
	}
}
