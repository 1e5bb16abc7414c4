package testkit

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// Recorder collects the events stored on some subjects of the Slipway
// stream, in stream order, from the stream's first message on: a test
// starts it before or after the effects it checks and waits for them with
// Wait, never by sleeping. An ordered consumer needs no ack and leaves
// nothing behind on the server.
type Recorder struct {
	mu   sync.Mutex
	evs  []events.Event
	more chan struct{} // a token after each new event; Wait re-checks on it
}

// Record starts a Recorder of the events on subjects (NATS filter subjects
// such as "slipway.deployment.>") of the default stream, stopped when the
// test ends. A message that is not a CloudEvent fails the test.
func Record(t testing.TB, js jetstream.JetStream, subjects ...string) *Recorder {
	t.Helper()
	r := &Recorder{more: make(chan struct{}, 1)}
	cons, err := js.OrderedConsumer(t.Context(), bus.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.FromMsg(m.Data())
		if err != nil {
			t.Errorf("bad event on %s: %v", m.Subject(), err)
			return
		}
		r.mu.Lock()
		r.evs = append(r.evs, ev)
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return r
}

// All returns every event recorded so far, in stream order.
func (r *Recorder) All() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// Of returns the events of a type recorded so far, in stream order.
func (r *Recorder) Of(typ events.Type) []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Event
	for _, e := range r.evs {
		if events.Type(e.Type()) == typ {
			out = append(out, e)
		}
	}
	return out
}

// Wait blocks until at least n events of a type were recorded, for at most
// a minute, and returns them all; it fails the test saying how many came.
func (r *Recorder) Wait(t testing.TB, typ events.Type, n int) []events.Event {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		if got := r.Of(typ); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-timeout:
			t.Fatalf("%d %s events within a minute, want %d", len(r.Of(typ)), typ.Short(), n)
		}
	}
}
