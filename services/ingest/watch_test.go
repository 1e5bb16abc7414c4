package ingest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// watcher reads image.pushed events off the stream from its start, in
// stream order, with an ordered consumer.
type watcher struct {
	cons jetstream.Consumer
}

func watch(t *testing.T, js jetstream.JetStream) *watcher {
	t.Helper()
	cons, err := js.OrderedConsumer(t.Context(), bus.DefaultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.FilterSubject(events.TypeImagePushed, "")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &watcher{cons: cons}
}

// until returns every event up to and including the first one whose data
// satisfies last, failing the test if it has not arrived by the deadline.
//
// This is how the end-to-end tests know that nothing more is coming without
// sleeping: a registry sends its notifications one at a time, in order, and
// ingest answers only after the ack, so once the event of a sentinel push
// (made last) is on the stream, every notification before it has been
// handled, and the events before it are all there will be.
func (w *watcher) until(t *testing.T, last func(events.ImagePushed) bool) []events.Event {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var out []events.Event
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("the awaited event did not arrive within %s; got %d events before", waitTimeout, len(out))
		}
		m, err := w.cons.Next(jetstream.FetchMaxWait(min(left, 5*time.Second)))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatalf("next event: %v", err)
		}
		e, err := events.FromMsg(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		if last(pushedData(t, e)) {
			return out
		}
	}
}

// tagged matches the event of repository:tag.
func tagged(repository, tag string) func(events.ImagePushed) bool {
	return func(d events.ImagePushed) bool { return d.Repository == repository && d.Tag == tag }
}
