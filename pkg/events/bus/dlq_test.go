package bus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

var dlqStream = bus.DeadLetterStreamName(bus.DefaultStream)

// deadLetterOne publishes an event, has consumer "dl" dead-letter it as
// permanent and returns the event.
func (e *env) deadLetterOne(t *testing.T, id string) events.Event {
	t.Helper()
	terminated := e.terminated(t, "dl")
	h, _ := recorder(func(call) error { return bus.Permanent(errors.New("bad image reference")) })
	c := e.consume(t, bus.ConsumerConfig{Durable: "dl", BackOff: short}, h)
	ev := deployment(t, e.ctx, id, "prd")
	e.publish(t, ev)
	recv(t, terminated, "dead-lettering")
	c.Stop()
	return ev
}

func TestDeadLetterListAndGet(t *testing.T) {
	e := start(t)
	before := time.Now().UTC()
	ev := e.deadLetterOne(t, "1")

	list, err := bus.ListDeadLetters(e.ctx, e.js, dlqStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d dead letters, want 1", len(list))
	}
	d := list[0]
	if d.Seq != 1 || d.Consumer != "dl" || d.Error != "bad image reference" || d.Subject != "slipway.deployment.succeeded.prd" ||
		d.Stream != bus.DefaultStream || d.Sequence != 1 || d.Deliveries != 1 || d.EventID != ev.ID() || d.EventType != ev.Type() {
		t.Errorf("dead letter %+v", d)
	}
	if d.Time.Before(before.Add(-time.Second)) || d.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("time %s, want about now", d.Time)
	}
	if got := d.Header.Get(events.HeaderContentType); got != events.ContentType {
		t.Errorf("content type %q", got)
	}
	got, err := bus.GetDeadLetter(e.ctx, e.js, dlqStream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != ev.ID() || string(got.Data) != string(d.Data) {
		t.Errorf("get: %+v", got)
	}
	if _, err := bus.GetDeadLetter(e.ctx, e.js, dlqStream, 42); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("get missing: %v, want ErrMsgNotFound", err)
	}
}

func TestRedriveInsideDuplicateWindow(t *testing.T) {
	e := start(t)
	e.deadLetterOne(t, "1")

	dup, err := bus.Redrive(e.ctx, e.js, dlqStream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !dup {
		t.Error("redrive inside the duplicate window not reported as duplicate")
	}
	if n := e.dlqMessages(t); n != 1 {
		t.Errorf("%d dead letters after a duplicate redrive, want 1 (kept)", n)
	}
	s, err := e.js.Stream(e.ctx, bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The event and the announcement of its dead letter.
	if info.State.Msgs != 2 {
		t.Errorf("%d events, want 2 (nothing re-published)", info.State.Msgs)
	}
	d, err := bus.GetDeadLetter(e.ctx, e.js, dlqStream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if nb := bus.RedriveNotBefore(e.ctx, e.js, dlqStream, d); nb.Before(time.Now().Add(bus.DefaultDuplicateWindow - time.Minute)) {
		t.Errorf("not before %s, want about 10m from now", nb)
	}
}

// shortWindows lets the duplicate windows pass within a test, which the
// contract (EnsureStream) does not allow.
func (e *env) shortWindows(t *testing.T, d time.Duration) {
	t.Helper()
	for _, name := range []string{bus.DefaultStream, dlqStream} {
		s, err := e.js.Stream(e.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Duplicates = d
		if _, err := e.js.UpdateStream(e.ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRedriveAfterDuplicateWindow(t *testing.T) {
	e := start(t)
	e.shortWindows(t, 200*time.Millisecond)
	ev := e.deadLetterOne(t, "1")

	// Waiting on a condition, bounded: the windows are short.
	end := time.Now().Add(deadline)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		dup, err := bus.Redrive(e.ctx, e.js, dlqStream, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !dup {
			break
		}
		if time.Now().After(end) {
			t.Fatal("redrive still a duplicate after the window")
		}
		<-tick.C
	}
	if n := e.dlqMessages(t); n != 0 {
		t.Errorf("%d dead letters after redrive, want 0", n)
	}
	list, err := bus.ListDeadLetters(e.ctx, e.js, dlqStream)
	if err != nil || len(list) != 0 {
		t.Errorf("list after redrive: %v, %v", list, err)
	}
	if _, err := bus.Redrive(e.ctx, e.js, dlqStream, 1); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("second redrive: %v, want ErrMsgNotFound", err)
	}

	// The consumer that gave up gets the event again, with its id, and
	// now handles it.
	h, calls := recorder(func(call) error { return nil })
	c := e.consume(t, bus.ConsumerConfig{Durable: "dl", BackOff: short}, h)
	got := recv(t, calls, "redriven event")
	// After the event (1) and the announcement of its dead letter (2).
	const redriven = 3
	if got.id != ev.ID() || got.delivery.Sequence != redriven || got.delivery.Subject != "slipway.deployment.succeeded.prd" {
		t.Errorf("redriven: id %s, delivery %+v", got.id, got.delivery)
	}
	c.Stop()
	e.settled(t, "dl")
	m := e.storedMsg(t, redriven)
	if m.Header.Get(events.HeaderMsgID) != ev.ID() || m.Header.Get(events.HeaderContentType) != events.ContentType {
		t.Errorf("redriven headers %v", m.Header)
	}
	for k := range m.Header {
		if len(k) > 12 && k[:12] == "Slipway-Dlq-" {
			t.Errorf("redriven message keeps %s", k)
		}
	}
}

func TestListDeadLettersSkipsDeleted(t *testing.T) {
	e := start(t)
	s, err := e.js.Stream(e.ctx, dlqStream)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.js.Publish(e.ctx, "slipway-dlq.x.slipway.deployment.succeeded.prd", []byte("not an event")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMsg(e.ctx, 2); err != nil {
		t.Fatal(err)
	}
	list, err := bus.ListDeadLetters(e.ctx, e.js, dlqStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Seq != 1 || list[1].Seq != 3 {
		t.Fatalf("list %+v, want seqs 1 and 3", list)
	}
	if list[0].Consumer != "x" || list[0].Subject != "slipway.deployment.succeeded.prd" || list[0].EventID != "" {
		t.Errorf("decoded from the subject: %+v", list[0])
	}
	if _, err := bus.Redrive(e.ctx, e.js, dlqStream, 1); err == nil {
		t.Error("redrive of a body that is not a CloudEvent succeeded")
	}
}
