package bus

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/slipway-cd/slipway/pkg/events"
)

// UnknownEnvironment is the environment of an event.deadlettered event whose
// message was not on a slipway.<noun>.<verb>.<environment> subject.
const UnknownEnvironment = "unknown"

// deadLetteredSubject starts the subject of every event.deadlettered event.
var deadLetteredSubject = events.SubjectPrefix + "." + events.TypeEventDeadLettered.Short() + "."

// DeadLetteredEvent builds the dev.slipway.event.deadlettered.v1 event that
// announces d. Its id derives from the dead letter's key (consumer, stream,
// sequence), so announcing the same dead letter again yields the same id and
// JetStream drops the copy. ctx supplies the trace: that of the message.
func DeadLetteredEvent(ctx context.Context, d DeadLetter) (events.Event, error) {
	key := deadLetterKey(d.Consumer, d.Stream, d.Sequence)
	id := events.ID(string(events.TypeEventDeadLettered), key)
	var subject string
	if d.EventID != "" {
		id = events.CausedID(d.EventID, events.TypeEventDeadLettered, key)
		if e, err := events.FromMsg(d.Data); err == nil {
			subject = e.Subject()
		}
	}
	return events.New(ctx, events.Spec{
		ID:          id,
		Type:        events.TypeEventDeadLettered,
		Source:      "/slipway/consumer/" + d.Consumer,
		Environment: d.Environment(),
		Subject:     subject,
		CausationID: d.EventID,
		Time:        d.Time,
		Data: events.EventDeadLettered{
			Consumer: d.Consumer, Stream: d.Stream, Sequence: d.Sequence, Subject: d.Subject,
			EventID: d.EventID, EventType: d.EventType, Error: d.Error, Deliveries: d.Deliveries,
			DLQSequence: d.Seq, DeadLetteredAt: d.Time,
		},
	})
}

// Environment is the environment of the dead-lettered event, read from
// the subject it was published on; UnknownEnvironment when that is no
// Slipway subject. It is the environment DeadLetteredEvent announces.
func (d DeadLetter) Environment() string { return subjectEnvironment(d.Subject) }

// subjectEnvironment is the environment token of a Slipway subject, its
// last one.
func subjectEnvironment(subject string) string {
	t := strings.Split(subject, ".")
	if len(t) != 4 || t[0] != events.SubjectPrefix || !events.ValidToken(t[3]) {
		return UnknownEnvironment
	}
	return t[3]
}

// announce publishes the event.deadlettered event of d on the consumer's
// stream, in the trace of the dead-lettered message. e is the message's
// event, nil when the body is not one.
func (c *Consumer) announce(ctx context.Context, msg jetstream.Msg, e *events.Event, d DeadLetter) error {
	// An announcement that cannot be handled would announce itself without
	// end; its dead letter is still stored.
	if d.EventType == string(events.TypeEventDeadLettered) || strings.HasPrefix(d.Subject, deadLetteredSubject) {
		return nil
	}
	if e != nil {
		ctx = events.ExtractTrace(ctx, *e)
	} else {
		carrier := propagation.MapCarrier{}
		for _, k := range []string{events.HeaderTraceParent, events.HeaderTraceState} {
			if v := msg.Headers().Get(k); v != "" {
				carrier.Set(k, v)
			}
		}
		ctx = propagation.TraceContext{}.Extract(ctx, carrier)
	}
	ev, err := DeadLetteredEvent(ctx, d)
	if err != nil {
		return err
	}
	_, err = NewPublisher(c.js, c.cfg.Stream).Publish(ctx, ev)
	return err
}
