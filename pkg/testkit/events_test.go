package testkit_test

import (
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// The recorder sees the events of its subjects in stream order, those
// stored before it started included, and none of other subjects.
func TestRecorderCollectsItsSubjectsInStreamOrder(t *testing.T) {
	_, js := testkit.NATS(t).Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{Name: bus.DefaultStream}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, "")
	publish := func(typ events.Type, tag string) events.Event {
		t.Helper()
		e, err := events.New(t.Context(), events.Spec{ID: events.ID(t.Name(), tag), Type: typ, Source: "/test",
			Environment: "dev", Subject: "registry.example/apps/web:" + tag, Data: map[string]string{"tag": tag}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		return e
	}

	first := publish(events.TypeImagePushed, "1")
	rec := testkit.Record(t, js, events.FilterSubject(events.TypeImagePushed, ""))
	publish(events.TypeImagePromoted, "2")
	last := publish(events.TypeImagePushed, "3")

	got := rec.Wait(t, events.TypeImagePushed, 2)
	if len(got) != 2 || got[0].ID() != first.ID() || got[1].ID() != last.ID() {
		t.Fatalf("recorded %v, want the two pushes in order", got)
	}
	if n := len(rec.Of(events.TypeImagePromoted)); n != 0 {
		t.Errorf("%d events of a subject not recorded", n)
	}
	if n := len(rec.All()); n != 2 {
		t.Errorf("%d events in all, want 2", n)
	}
}
