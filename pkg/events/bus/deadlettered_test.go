package bus_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

var announcements = events.FilterSubject(events.TypeEventDeadLettered, "")

// announced returns the event.deadlettered events on the stream.
func (e *env) announced(t *testing.T) []events.Event {
	t.Helper()
	s, err := e.js.Stream(e.ctx, bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx, jetstream.WithSubjectFilter(announcements))
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for subject, n := range info.State.Subjects {
		if n != 1 {
			t.Errorf("%d announcements on %s", n, subject)
		}
		m, err := s.GetLastMsgForSubject(e.ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.FromMsg(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(events.HeaderMsgID) != ev.ID() {
			t.Errorf("announcement published with Nats-Msg-Id %q, want its id %s", m.Header.Get(events.HeaderMsgID), ev.ID())
		}
		out = append(out, ev)
	}
	return out
}

// hooked records what OnDeadLetter was called with.
type hooked struct {
	mu      sync.Mutex
	letters []bus.DeadLetter
}

func (h *hooked) add(d bus.DeadLetter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.letters = append(h.letters, d)
}

func (h *hooked) all() []bus.DeadLetter {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bus.DeadLetter(nil), h.letters...)
}

func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

// A permanent failure stores the copy and announces it once, with the data
// an operator needs to find and redrive it; dead-lettering the same stream
// position again (a lost Term, a consumer recreated from the start) neither
// announces nor counts it twice.
func TestDeadLetterIsAnnouncedOnce(t *testing.T) {
	e := start(t)
	var hook hooked
	term := e.terminated(t, "strict")
	h, _ := recorder(func(call) error { return bus.Permanent(errors.New("marathon said 422: bad image reference")) })
	cfg := bus.ConsumerConfig{Durable: "strict", BackOff: short, OnDeadLetter: hook.add}
	c := e.consume(t, cfg, h)
	ev := deployment(t, e.ctx, "1", "prd")
	e.publish(t, ev)
	recv(t, term, "dead-lettering")
	c.Stop()

	if n := e.dlqMessages(t); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	got := e.announced(t)
	if len(got) != 1 {
		t.Fatalf("%d announcements, want 1", len(got))
	}
	a := got[0]
	key := "strict:" + bus.DefaultStream + ":1"
	if a.Type() != string(events.TypeEventDeadLettered) || a.ID() != events.CausedID(ev.ID(), events.TypeEventDeadLettered, key) {
		t.Errorf("announcement %s %s, want the id caused by %s with key %s", a.Type(), a.ID(), ev.ID(), key)
	}
	if s, _ := events.SubjectOf(a); s != "slipway.event.deadlettered.prd" {
		t.Errorf("announced on %s, want the original's environment", s)
	}
	if events.CausationOf(a) != ev.ID() || a.Subject() != ev.Subject() || a.Source() != "/slipway/consumer/strict" {
		t.Errorf("causation %q, subject %q, source %q", events.CausationOf(a), a.Subject(), a.Source())
	}
	// As stored: the publisher stamped its span's traceparent.
	orig := e.storedMsg(t, 1).Header.Get(events.HeaderTraceParent)
	tp, _ := a.Extensions()[events.ExtTraceParent].(string)
	if traceID(tp) == "" || traceID(tp) != traceID(orig) {
		t.Errorf("announcement traceparent %q is not in the original's trace %q", tp, orig)
	}
	d, err := events.DataAs[events.EventDeadLettered](a)
	if err != nil {
		t.Fatal(err)
	}
	if d.Consumer != "strict" || d.Stream != bus.DefaultStream || d.Sequence != 1 || d.Subject != "slipway.deployment.succeeded.prd" ||
		d.EventID != ev.ID() || d.EventType != ev.Type() || d.Error != "marathon said 422: bad image reference" ||
		d.Deliveries != 1 || d.DLQSequence != 1 || d.DeadLetteredAt.IsZero() {
		t.Errorf("data %+v", d)
	}
	letter, err := bus.GetDeadLetter(e.ctx, e.js, dlqStream, d.DLQSequence)
	if err != nil || letter.EventID != ev.ID() {
		t.Errorf("dlqSequence %d does not name the dead letter: %+v, %v", d.DLQSequence, letter, err)
	}
	if l := hook.all(); len(l) != 1 || l[0].Seq != 1 || l[0].Consumer != "strict" || l[0].EventID != ev.ID() {
		t.Errorf("OnDeadLetter calls %+v, want one for dead letter 1", l)
	}

	// The same durable reads the same position again and gives up again.
	if err := e.js.DeleteConsumer(e.ctx, bus.DefaultStream, "strict"); err != nil {
		t.Fatal(err)
	}
	c = e.consume(t, cfg, h)
	recv(t, term, "dead-lettering again")
	c.Stop()
	if n := e.dlqMessages(t); n != 1 {
		t.Errorf("%d dead letters after a redelivery, want 1", n)
	}
	if got := e.announced(t); len(got) != 1 || got[0].ID() != a.ID() {
		t.Errorf("announcements after a redelivery: %d, want the first one only", len(got))
	}
	if n := len(hook.all()); n != 1 {
		t.Errorf("OnDeadLetter called %d times, want once", n)
	}
}

// An announcement that is dead-lettered in turn is stored, but not
// announced: that would go on for ever.
func TestDeadLetteredAnnouncementIsNotAnnounced(t *testing.T) {
	e := start(t)
	fails := func(call) error { return bus.Permanent(errors.New("cannot handle it")) }
	h, _ := recorder(fails)
	e.consume(t, bus.ConsumerConfig{Durable: "strict", BackOff: short}, h)
	onCall := e.terminated(t, "oncall")
	h2, calls := recorder(fails)
	e.consume(t, bus.ConsumerConfig{Durable: "oncall", BackOff: short, FilterSubjects: []string{announcements}}, h2)
	e.publish(t, deployment(t, e.ctx, "1", "prd"))

	recv(t, onCall, "the announcement dead-lettered")
	announced := recv(t, calls, "the announcement").id
	if n := e.dlqMessages(t); n != 2 {
		t.Errorf("%d dead letters, want the event's and the announcement's", n)
	}
	m := e.lastDLQ(t, bus.DeadLetterSubject("oncall", "slipway.event.deadlettered.prd"))
	if m.Header.Get(events.HeaderMsgID) != "oncall:"+bus.DefaultStream+":2" {
		t.Errorf("dead letter of the announcement: %v", m.Header)
	}
	if got := e.announced(t); len(got) != 1 || got[0].ID() != announced {
		t.Errorf("%d announcements, want only the event's", len(got))
	}
}

// A message that is not a CloudEvent is announced too, in the environment
// of its subject, without causation.
func TestMalformedDeadLetterIsAnnounced(t *testing.T) {
	e := start(t)
	term := e.terminated(t, "picky")
	h, _ := recorder(func(call) error { return nil })
	e.consume(t, bus.ConsumerConfig{Durable: "picky", BackOff: short}, h)
	bad := nats.NewMsg("slipway.deployment.succeeded.dev")
	bad.Data = []byte(`not json`)
	if _, err := e.js.PublishMsg(e.ctx, bad); err != nil {
		t.Fatal(err)
	}
	recv(t, term, "dead-lettering")
	got := e.announced(t)
	if len(got) != 1 {
		t.Fatalf("%d announcements, want 1", len(got))
	}
	a := got[0]
	if a.ID() != events.ID(string(events.TypeEventDeadLettered), "picky:"+bus.DefaultStream+":1") || events.EnvironmentOf(a) != "dev" ||
		events.CausationOf(a) != "" || a.Subject() != "" {
		t.Errorf("announcement %s in %q, causation %q, subject %q", a.ID(), events.EnvironmentOf(a), events.CausationOf(a), a.Subject())
	}
	d, err := events.DataAs[events.EventDeadLettered](a)
	if err != nil || d.EventID != "" || d.EventType != "" || !strings.Contains(d.Error, "CloudEvent") || d.DLQSequence != 1 {
		t.Errorf("data %+v, %v", d, err)
	}
}

func TestDeadLetteredEventEnvironment(t *testing.T) {
	for subject, want := range map[string]string{
		"slipway.image.pushed.dev": "dev",
		"slipway.image.pushed":     bus.UnknownEnvironment,
		"other.image.pushed.dev":   bus.UnknownEnvironment,
		"orders":                   bus.UnknownEnvironment,
	} {
		ev, err := bus.DeadLetteredEvent(t.Context(), bus.DeadLetter{Seq: 3, Consumer: "c", Stream: "S", Sequence: 9, Subject: subject, Error: "x"})
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if got := events.EnvironmentOf(ev); got != want {
			t.Errorf("%s: environment %q, want %q", subject, got, want)
		}
	}
}
