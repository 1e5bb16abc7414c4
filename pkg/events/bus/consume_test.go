package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// short keeps retries quick; the tests never depend on how long they take.
var short = []time.Duration{10 * time.Millisecond}

func TestConsumeAcksOnSuccess(t *testing.T) {
	e := start(t)
	h, calls := recorder(func(call) error { return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "ok", BackOff: short}, h)
	ev := deployment(t, e.ctx, "1", "prd")
	e.publish(t, ev)

	got := recv(t, calls, "handler call")
	if got.id != ev.ID() {
		t.Errorf("handler got %s, want %s", got.id, ev.ID())
	}
	want := bus.Delivery{Consumer: "ok", Stream: bus.DefaultStream, Subject: "slipway.deployment.succeeded.prd", Sequence: 1, Attempt: 1, MaxDeliver: bus.DefaultMaxDeliver}
	if got.delivery != want {
		t.Errorf("delivery %+v, want %+v", got.delivery, want)
	}
	c.Stop() // waits for the confirmed ack
	info := e.settled(t, "ok")
	if info.AckFloor.Stream != 1 || info.NumRedelivered != 0 {
		t.Errorf("ack floor %d, redelivered %d; want 1, 0", info.AckFloor.Stream, info.NumRedelivered)
	}
	if n := len(calls); n != 0 {
		t.Errorf("%d extra handler calls", n)
	}
	if n := e.dlqMessages(t); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestConsumeRetriesAfterError(t *testing.T) {
	e := start(t)
	h, calls := recorder(func(c call) error {
		if c.delivery.Attempt == 1 {
			return errors.New("registry unavailable")
		}
		return nil
	})
	c := e.consume(t, bus.ConsumerConfig{Durable: "retry", BackOff: short}, h)
	e.publish(t, deployment(t, e.ctx, "1", "prd"))

	if a := recv(t, calls, "first call").delivery.Attempt; a != 1 {
		t.Errorf("first call attempt %d", a)
	}
	if a := recv(t, calls, "retry").delivery.Attempt; a != 2 {
		t.Errorf("retry attempt %d, want 2", a)
	}
	c.Stop()
	if info := e.settled(t, "retry"); info.AckFloor.Stream != 1 {
		t.Errorf("ack floor %d, want 1", info.AckFloor.Stream)
	}
	if n := len(calls); n != 0 {
		t.Errorf("%d extra handler calls", n)
	}
	if n := e.dlqMessages(t); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestConsumeTreatsPanicAsError(t *testing.T) {
	e := start(t)
	h, calls := recorder(func(c call) error {
		if c.delivery.Attempt == 1 {
			panic("nil map")
		}
		return nil
	})
	e.consume(t, bus.ConsumerConfig{Durable: "panics", BackOff: short}, h)
	e.publish(t, deployment(t, e.ctx, "1", "prd"))
	recv(t, calls, "first call")
	if a := recv(t, calls, "retry after panic").delivery.Attempt; a != 2 {
		t.Errorf("retry attempt %d, want 2", a)
	}
}

func TestConsumeRetryAfterOverridesBackOff(t *testing.T) {
	e := start(t)
	h, calls := recorder(func(c call) error {
		if c.delivery.Attempt == 1 {
			return bus.RetryAfter(errors.New("slack: 429"), 10*time.Millisecond)
		}
		return nil
	})
	// With this back-off the retry would come long after the test deadline.
	e.consume(t, bus.ConsumerConfig{Durable: "throttled", BackOff: []time.Duration{time.Hour}}, h)
	e.publish(t, deployment(t, e.ctx, "1", "prd"))
	recv(t, calls, "first call")
	if a := recv(t, calls, "retry after Retry-After").delivery.Attempt; a != 2 {
		t.Errorf("retry attempt %d, want 2", a)
	}
}

func TestConsumeDeadLettersAfterMaxDeliver(t *testing.T) {
	e := start(t)
	term := e.terminated(t, "failing")
	h, calls := recorder(func(call) error { return errors.New("marathon said:\r\n503 " + strings.Repeat("x", 1100)) })
	c := e.consume(t, bus.ConsumerConfig{Durable: "failing", MaxDeliver: 3, BackOff: short}, h)
	ev := deployment(t, e.ctx, "1", "prd")
	e.publish(t, ev)

	if seq := recv(t, term, "termination"); seq != 1 {
		t.Errorf("terminated stream sequence %d, want 1", seq)
	}
	c.Stop()
	for i := 1; i <= 3; i++ {
		d := recv(t, calls, "handler call").delivery
		if d.Attempt != i || d.Last() != (i == 3) {
			t.Errorf("call %d: attempt %d, last %t", i, d.Attempt, d.Last())
		}
	}
	if n := len(calls); n != 0 {
		t.Errorf("%d handler calls after the last delivery", n)
	}
	e.settled(t, "failing")
	if n := e.dlqMessages(t); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}

	subject := "slipway.deployment.succeeded.prd"
	m := e.lastDLQ(t, bus.DeadLetterSubject("failing", subject))
	// The original as stored: the publisher stamped its span's traceparent.
	orig := e.storedMsg(t, 1)
	if orig.Header.Get(events.HeaderTraceParent) == "" {
		t.Error("the published event carries no traceparent")
	}
	if string(m.Data) != string(orig.Data) {
		t.Errorf("dead letter body differs from the original")
	}
	for k, want := range map[string]string{
		bus.HeaderDLQConsumer:     "failing",
		bus.HeaderDLQStream:       bus.DefaultStream,
		bus.HeaderDLQSequence:     "1",
		bus.HeaderDLQDeliveries:   "3",
		bus.HeaderDLQSubject:      subject,
		events.HeaderMsgID:        "failing:" + bus.DefaultStream + ":1",
		events.HeaderContentType:  events.ContentType,
		events.HeaderTraceParent:  orig.Header.Get(events.HeaderTraceParent),
		"Slipway-Dlq-Nonexistent": "",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	// The publisher's expectation must not have been copied: it would have
	// made the server reject the dead-letter publish.
	if got := m.Header.Get("Nats-Expected-Stream"); got == bus.DefaultStream {
		t.Errorf("Nats-Expected-Stream %q copied", got)
	}
	errh := m.Header.Get(bus.HeaderDLQError)
	if !strings.HasPrefix(errh, "marathon said:  503 xxx") || len(errh) > 1024 || strings.ContainsAny(errh, "\r\n") {
		t.Errorf("error header %q (%d bytes): want the error on one line, at most 1024 bytes", errh[:min(len(errh), 40)], len(errh))
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Header.Get(bus.HeaderDLQTime)); err != nil {
		t.Errorf("time header: %v", err)
	}
}

func TestConsumeDeadLettersPermanentAtOnce(t *testing.T) {
	e := start(t)
	term := e.terminated(t, "strict")
	h, calls := recorder(func(call) error {
		return fmt.Errorf("copy image: %w", bus.Permanent(errors.New("manifest unknown")))
	})
	c := e.consume(t, bus.ConsumerConfig{Durable: "strict", BackOff: short}, h)
	ev := deployment(t, e.ctx, "1", "prd")
	e.publish(t, ev)

	recv(t, term, "termination")
	c.Stop()
	recv(t, calls, "handler call")
	if n := len(calls); n != 0 {
		t.Errorf("%d retries of a permanent error", n)
	}
	e.settled(t, "strict")
	m := e.lastDLQ(t, bus.DeadLetterSubject("strict", "slipway.deployment.succeeded.prd"))
	if got := m.Header.Get(bus.HeaderDLQDeliveries); got != "1" {
		t.Errorf("deliveries %s, want 1", got)
	}
	if got := m.Header.Get(bus.HeaderDLQError); got != "copy image: manifest unknown" {
		t.Errorf("error header %q", got)
	}
}

func TestConsumeDeadLettersMalformed(t *testing.T) {
	e := start(t)
	term := e.terminated(t, "picky")
	h, calls := recorder(func(call) error { return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "picky", BackOff: short}, h)

	bad := nats.NewMsg("slipway.deployment.succeeded.prd")
	bad.Data = []byte(`{"not":"a cloudevent"}`)
	bad.Header.Set("X-Origin", "hand-made")
	if _, err := e.js.PublishMsg(e.ctx, bad); err != nil {
		t.Fatal(err)
	}
	good := deployment(t, e.ctx, "2", "prd")
	e.publish(t, good)

	recv(t, term, "termination")
	if got := recv(t, calls, "the valid event").id; got != good.ID() {
		t.Errorf("handler got %s, want only the valid event %s", got, good.ID())
	}
	c.Stop()
	if n := len(calls); n != 0 {
		t.Errorf("%d extra handler calls", n)
	}
	e.settled(t, "picky")
	m := e.lastDLQ(t, bus.DeadLetterSubject("picky", "slipway.deployment.succeeded.prd"))
	if string(m.Data) != string(bad.Data) {
		t.Errorf("dead letter body %q", m.Data)
	}
	if got := m.Header.Get(events.HeaderMsgID); got != "picky:SLIPWAY:1" {
		t.Errorf("Nats-Msg-Id %q, want picky:SLIPWAY:1", got)
	}
	if got := m.Header.Get("X-Origin"); got != "hand-made" {
		t.Errorf("original header lost: %q", got)
	}
	if got := m.Header.Get(bus.HeaderDLQError); !strings.Contains(got, "CloudEvent") {
		t.Errorf("error header %q", got)
	}
}

func TestConsumeSharesDurable(t *testing.T) {
	e := start(t)
	const n = 20
	var (
		mu      sync.Mutex
		handled = map[string]int{}
		all     = make(chan struct{})
	)
	// Each process holds its first event until the other has one too, so
	// the test proves both take part whatever the scheduling.
	entered := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	var once = map[string]*sync.Once{"a": {}, "b": {}}
	handler := func(self, other string) bus.Handler {
		return func(ctx context.Context, ev events.Event) error {
			once[self].Do(func() { close(entered[self]) })
			select {
			case <-entered[other]:
			case <-time.After(deadline):
				t.Errorf("process %s never got an event", other)
			}
			mu.Lock()
			defer mu.Unlock()
			handled[ev.ID()]++
			if len(handled) == n {
				select {
				case <-all:
				default:
					close(all)
				}
			}
			return nil
		}
	}
	cfg := bus.ConsumerConfig{Durable: "shared", BackOff: short}
	a := e.consume(t, cfg, handler("a", "b"))
	b := e.consume(t, cfg, handler("b", "a"))
	for i := range n {
		e.publish(t, deployment(t, e.ctx, fmt.Sprint(i), "prd"))
	}
	recv(t, all, "all events")
	a.Stop()
	b.Stop()
	mu.Lock()
	defer mu.Unlock()
	for id, k := range handled {
		if k != 1 {
			t.Errorf("event %s handled %d times", id, k)
		}
	}
	if info := e.settled(t, "shared"); info.NumRedelivered != 0 {
		t.Errorf("%d redelivered", info.NumRedelivered)
	}
}

func TestConsumeFiltersSubjects(t *testing.T) {
	e := start(t)
	h, calls := recorder(func(call) error { return nil })
	e.publish(t, deployment(t, e.ctx, "dev", "dev"))
	prd := deployment(t, e.ctx, "prd", "prd")
	e.publish(t, prd)
	c := e.consume(t, bus.ConsumerConfig{
		Durable:        "prd-only",
		FilterSubjects: []string{events.FilterSubject(events.TypeDeploymentSucceeded, "prd")},
	}, h)
	if got := recv(t, calls, "prd event").id; got != prd.ID() {
		t.Errorf("handler got %s, want the prd event", got)
	}
	c.Stop()
	if n := len(calls); n != 0 {
		t.Errorf("%d extra handler calls", n)
	}
	e.settled(t, "prd-only")
}

func TestConsumeDeliverNewKeepsPosition(t *testing.T) {
	e := start(t)
	e.publish(t, deployment(t, e.ctx, "old", "prd"))
	h, calls := recorder(func(call) error { return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "fresh", DeliverNew: true}, h)
	fresh := deployment(t, e.ctx, "new", "prd")
	e.publish(t, fresh)
	if got := recv(t, calls, "new event").id; got != fresh.ID() {
		t.Errorf("handler got %s first, want the event published after creation", got)
	}
	c.Stop()

	// The same durable without DeliverNew must neither fail (the deliver
	// policy cannot be updated) nor go back in history.
	c2 := e.consume(t, bus.ConsumerConfig{Durable: "fresh"}, h)
	newer := deployment(t, e.ctx, "newer", "prd")
	e.publish(t, newer)
	if got := recv(t, calls, "newer event").id; got != newer.ID() {
		t.Errorf("handler got %s, want %s", got, newer.ID())
	}
	c2.Stop()
	if n := len(calls); n != 0 {
		t.Errorf("%d extra handler calls", n)
	}
}

func TestConsumeStopWaitsForRunningHandler(t *testing.T) {
	e := start(t)
	release := make(chan struct{})
	h, calls := recorder(func(call) error { <-release; return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "slow"}, h)
	e.publish(t, deployment(t, e.ctx, "1", "prd"))
	got := recv(t, calls, "handler call")

	stopped := make(chan struct{})
	go func() { c.Stop(); close(stopped) }()
	select {
	case <-c.Done():
		t.Fatal("consumer done while a handler runs")
	default:
	}
	if got.ctx.Err() != nil {
		t.Error("Stop cancelled the running handler")
	}
	close(release)
	recv(t, stopped, "Stop")
	if info := e.settled(t, "slow"); info.AckFloor.Stream != 1 {
		t.Errorf("the handler's result was not acked: ack floor %d", info.AckFloor.Stream)
	}
	if c.Err() != nil {
		t.Errorf("Err after Stop: %v", c.Err())
	}
}

func TestConsumeCancelHandsEventBack(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	h, calls := recorder(func(c call) error { <-c.ctx.Done(); return c.ctx.Err() })
	c, err := bus.Consume(ctx, e.js, bus.ConsumerConfig{Durable: "handback", MaxDeliver: 1, Logger: testLogger(t)}, h)
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, deployment(t, e.ctx, "1", "prd"))
	recv(t, calls, "handler call")
	cancel()
	recv(t, c.Done(), "consumer done")

	// Interrupted by shutdown, not failed: no dead letter even though it was
	// the last allowed delivery, and another process gets it at once.
	h2, calls2 := recorder(func(call) error { return nil })
	c2 := e.consume(t, bus.ConsumerConfig{Durable: "handback", MaxDeliver: 1}, h2)
	if a := recv(t, calls2, "redelivery").delivery.Attempt; a != 2 {
		t.Errorf("redelivery attempt %d, want 2", a)
	}
	c2.Stop()
	e.settled(t, "handback")
	if n := e.dlqMessages(t); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestConsumeStopsWhenConnectionCloses(t *testing.T) {
	e := start(t)
	nc, err := nats.Connect(e.nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bus.Consume(e.ctx, js, bus.ConsumerConfig{Durable: "orphan", Logger: testLogger(t)}, func(context.Context, events.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	recv(t, c.Done(), "consumer done")
	if !errors.Is(c.Err(), jetstream.ErrConnectionClosed) {
		t.Errorf("Err = %v, want connection closed", c.Err())
	}
}

func TestConsumeTracePropagation(t *testing.T) {
	e := start(t)
	h, calls := recorder(func(call) error { return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "traced"}, h)

	ctx, producer := otel.Tracer("test").Start(e.ctx, "webhook")
	ev := deployment(t, ctx, "1", "prd")
	e.publish(t, ev)
	producer.End()
	psc := producer.SpanContext()

	got := recv(t, calls, "handler call")
	hsc := trace.SpanContextFromContext(got.ctx)
	if hsc.TraceID() != psc.TraceID() {
		t.Fatalf("handler trace %s, want the publisher's %s", hsc.TraceID(), psc.TraceID())
	}
	if hsc.SpanID() == psc.SpanID() {
		t.Error("handler runs in the publisher's span, want its own consume span")
	}
	c.Stop() // the consume span ends before the ack

	var found bool
	for _, s := range spans.Ended() {
		if s.SpanContext().SpanID() != hsc.SpanID() {
			continue
		}
		found = true
		// The messaging conventions: "{operation} {destination}".
		if s.Name() != "process slipway.deployment.succeeded.prd" {
			t.Errorf("span name %q", s.Name())
		}
		pub := spanByID(s.Parent().SpanID())
		if pub == nil || !s.Parent().IsRemote() || pub.Name() != "publish slipway.deployment.succeeded.prd" || pub.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("span parent %v, want the remote publish span", s.Parent())
		}
		if pub.Parent().SpanID() != psc.SpanID() {
			t.Errorf("publish span parent %v, want the webhook span", pub.Parent())
		}
		pattrs := attribute.NewSet(pub.Attributes()...)
		for k, want := range map[attribute.Key]string{
			"messaging.system":           "nats",
			"messaging.operation.type":   "send",
			"messaging.operation.name":   "publish",
			"messaging.destination.name": "slipway.deployment.succeeded.prd",
		} {
			if v, _ := pattrs.Value(k); v.AsString() != want {
				t.Errorf("publish span %s = %q, want %q", k, v.AsString(), want)
			}
		}
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("span kind %v", s.SpanKind())
		}
		attrs := attribute.NewSet(s.Attributes()...)
		for k, want := range map[attribute.Key]attribute.Value{
			"messaging.system":              attribute.StringValue("nats"),
			"messaging.operation.type":      attribute.StringValue("process"),
			"messaging.operation.name":      attribute.StringValue("process"),
			"messaging.consumer.group.name": attribute.StringValue("traced"),
			"messaging.destination.name":    attribute.StringValue("slipway.deployment.succeeded.prd"),
			"messaging.message.id":          attribute.StringValue(ev.ID()),
			"slipway.delivery.attempt":      attribute.IntValue(1),
		} {
			if v, ok := attrs.Value(k); !ok || v != want {
				t.Errorf("attribute %s = %v, want %v", k, v.Emit(), want.Emit())
			}
		}
	}
	if !found {
		t.Error("no consume span recorded")
	}
}

func TestConsumeRejectsBadConfig(t *testing.T) {
	e := start(t)
	nop := func(context.Context, events.Event) error { return nil }
	for name, cfg := range map[string]bus.ConsumerConfig{
		"no durable":          {},
		"dotted durable":      {Durable: "a.b"},
		"negative maxDeliver": {Durable: "x", MaxDeliver: -1},
		"negative back-off":   {Durable: "x", BackOff: []time.Duration{-time.Second}},
		"unknown stream":      {Durable: "x", Stream: "NOPE"},
	} {
		if c, err := bus.Consume(e.ctx, e.js, cfg, nop); err == nil {
			c.Stop()
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := bus.Consume(e.ctx, e.js, bus.ConsumerConfig{Durable: "x"}, nil); err == nil {
		t.Error("nil handler: no error")
	}
	// A stream that EnsureStream did not create has nowhere to dead-letter.
	if _, err := e.js.CreateStream(e.ctx, jetstream.StreamConfig{Name: "BARE", Subjects: []string{"bare.>"}}); err != nil {
		t.Fatal(err)
	}
	if c, err := bus.Consume(e.ctx, e.js, bus.ConsumerConfig{Durable: "x", Stream: "BARE"}, nop); err == nil {
		c.Stop()
		t.Error("stream without dead-letter stream: no error")
	}
}

func TestDeadLetterSubject(t *testing.T) {
	got := bus.DeadLetterSubject("notifier", "slipway.image.pushed.dev")
	if want := "slipway-dlq.notifier.slipway.image.pushed.dev"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// spanByID returns the ended span with id, or nil.
func spanByID(id trace.SpanID) sdktrace.ReadOnlySpan {
	for _, s := range spans.Ended() {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	return nil
}
