package actions

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
)

// outcomeTypes are the events that end an action's work: what the deployer
// (rollback, redeploy) and the promoter (promote) announce, caused by the
// action's event. An approval.requested ends a promote action's part: the
// copy then waits for a person.
var outcomeTypes = []events.Type{
	events.TypeDeploymentSucceeded, events.TypeDeploymentFailed,
	events.TypeImagePromoted, events.TypePromotionFailed, events.TypeApprovalRequested,
}

// Succeeded reports whether an outcome event says the action did its
// work (or, approval.requested, all it can until someone decides).
func Succeeded(outcome events.Event) bool {
	switch events.Type(outcome.Type()) {
	case events.TypeDeploymentSucceeded, events.TypeImagePromoted, events.TypeApprovalRequested:
		return true
	}
	return false
}

// Watch follows the event stream for the outcome of an action. Start it
// before announcing the action, so that an outcome that comes quickly is
// not missed.
type Watch struct {
	js     jetstream.JetStream
	stream string
	from   uint64
}

// NewWatch returns a watch of stream that sees every event stored from
// now on.
func NewWatch(ctx context.Context, js jetstream.JetStream, stream string) (*Watch, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return &Watch{js: js, stream: stream, from: s.CachedInfo().State.LastSeq + 1}, nil
}

// Outcome returns the first outcome event (see Succeeded) caused by the
// action event actionID, waiting for it until ctx ends. Its consumer is
// ordered and ephemeral: the server forgets it.
func (w *Watch) Outcome(ctx context.Context, actionID string) (events.Event, error) {
	subjects := make([]string, len(outcomeTypes))
	for i, t := range outcomeTypes {
		subjects[i] = events.FilterSubject(t, "")
	}
	cons, err := w.js.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    w.from,
	})
	if err != nil {
		return events.Event{}, err
	}
	found := make(chan events.Event, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		e, err := events.FromMsg(m.Data())
		if err != nil || events.CausationOf(e) != actionID {
			return
		}
		select {
		case found <- e:
		default:
		}
	})
	if err != nil {
		return events.Event{}, err
	}
	defer cc.Stop()
	select {
	case e := <-found:
		return e, nil
	case <-ctx.Done():
		return events.Event{}, fmt.Errorf("no outcome of action %s seen: %w", actionID, ctx.Err())
	}
}
