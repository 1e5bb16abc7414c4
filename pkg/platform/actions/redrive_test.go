package actions_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// TestRedriveAnnouncesTheDeadLetterItRedrives: the action names the dead
// letter's event and environment before anything is re-published; inside
// the event stream's duplicate window the dead letter is kept and the
// outcome says when to try again; a sequence without a dead letter
// announces nothing.
func TestRedriveAnnouncesTheDeadLetterItRedrives(t *testing.T) {
	ctx := t.Context()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(ctx, js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	seen := testkit.Record(t, js, events.FilterSubject(events.TypeActionRequested, ""))
	c, err := bus.Consume(ctx, js, bus.ConsumerConfig{Durable: "deployer", Logger: slog.New(slog.DiscardHandler),
		FilterSubjects: []string{events.FilterSubject(events.TypeImagePromoted, "")}},
		func(context.Context, events.Event) error { return bus.Permanent(errors.New("marathon said 422")) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	pub := bus.NewPublisher(js, "")
	ev, err := events.New(ctx, events.Spec{ID: "promoted-1", Type: events.TypeImagePromoted, Source: "/test", Environment: "prd",
		Subject: "registry.prd.example/apps/web:1.0", Data: events.ImagePromoted{Promotion: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	testkit.WaitFor(t, "the dead letter", func() bool {
		list, err := bus.ListDeadLetters(ctx, js, bus.DeadLetterStreamName(bus.DefaultStream))
		if err == nil && len(list) == 1 {
			seq = list[0].Seq
		}
		return seq != 0
	})

	req := actions.Request{ID: actions.NewID(), Actor: "alice", Via: events.ViaConsole, Reason: "fixed the image",
		Target: events.ActionTarget{Sequence: seq}}
	out, err := actions.Redrive(ctx, js, bus.DefaultStream, pub, req, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != actions.Kept || out.NotBefore.IsZero() || out.DeadLetter.EventID != ev.ID() {
		t.Errorf("outcome %+v, want kept with a time to retry", out)
	}
	got := seen.Wait(t, events.TypeActionRequested, 1)
	d, _ := events.DataAs[events.ActionRequested](got[0])
	want := events.ActionTarget{Environment: "prd", Sequence: seq, EventID: ev.ID()}
	if got[0].ID() != out.Event.ID() || d.Action != events.ActionRedrive || d.Actor != "alice" || d.Via != events.ViaConsole || d.Target != want {
		t.Errorf("action.requested %+v, want redrive by alice via console of %+v", d, want)
	}

	_, err = actions.Redrive(ctx, js, bus.DefaultStream, pub, actions.Request{ID: actions.NewID(), Actor: "alice", Via: events.ViaCLI,
		Target: events.ActionTarget{Sequence: seq + 10}}, time.Now())
	if !errors.Is(err, actions.ErrNoDeadLetter) {
		t.Errorf("a missing dead letter: %v, want ErrNoDeadLetter", err)
	}
	// Counted in the stream, which has stored whatever was published.
	s, err := js.Stream(ctx, bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(events.FilterSubject(events.TypeActionRequested, "")))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	if n != 1 {
		t.Errorf("%d actions stored, want 1 (none for a missing dead letter)", n)
	}
}
