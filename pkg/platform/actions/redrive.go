package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// The results of a redrive (RedriveOutcome.Result).
const (
	// Redriven: the event is back on its original subject and the dead
	// letter is gone.
	Redriven = "redriven"
	// Kept: the event stream still knows the event's id (its duplicate
	// window), so JetStream dropped the copy; the dead letter stays, and
	// NotBefore says when a redrive can take effect.
	Kept = "kept"
	// Failed: the dead letter could not be redriven; the error says why.
	Failed = "failed"
)

// RedriveOutcome is what Redrive did with one dead letter.
type RedriveOutcome struct {
	Result string
	// DeadLetter is the dead letter as it was read before the redrive.
	DeadLetter bus.DeadLetter
	// Event is the announced action.requested event; zero when the
	// action was not announced (the dead letter could not be read).
	Event events.Event
	// NotBefore is, for Kept, when a redrive can first take effect; zero
	// when that cannot be told.
	NotBefore time.Time
}

// ErrNoDeadLetter is returned (wrapped) for a sequence that names no dead
// letter.
var ErrNoDeadLetter = errors.New("no such dead letter")

// Redrive re-publishes dead letter req.Target.Sequence of the dead-letter
// stream of stream (the event stream's name; DeadLetterStreamName makes the
// other) after announcing it as req, a redrive action: the announcement
// names the dead letter's event and environment, which Redrive fills in, so
// that the audit record exists before anything changes. Every interface
// (API, CLI, console) redrives through it.
//
// A dead letter the event stream still knows (its duplicate window) is
// Kept, with no error; one that could not be redriven is Failed, with the
// error. An error with the zero Result means nothing was announced.
func Redrive(ctx context.Context, js jetstream.JetStream, stream string, pub *bus.Publisher, req Request, now time.Time) (RedriveOutcome, error) {
	req.Action = events.ActionRedrive
	seq := req.Target.Sequence
	if seq == 0 {
		return RedriveOutcome{}, fmt.Errorf("%w: redrive needs the dead letter's sequence", ErrInvalid)
	}
	dlq := bus.DeadLetterStreamName(stream)
	d, err := bus.GetDeadLetter(ctx, js, dlq, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return RedriveOutcome{}, fmt.Errorf("%w: %d on %s", ErrNoDeadLetter, seq, dlq)
	}
	if err != nil {
		return RedriveOutcome{}, err
	}
	out := RedriveOutcome{DeadLetter: d}
	req.Target.Environment = d.Environment()
	req.Target.EventID = d.EventID
	if out.Event, err = Publish(ctx, pub, req, now); err != nil {
		return RedriveOutcome{DeadLetter: d}, err
	}
	dup, err := bus.Redrive(ctx, js, dlq, seq)
	switch {
	case err != nil:
		out.Result = Failed
		return out, err
	case dup:
		out.Result = Kept
		out.NotBefore = bus.RedriveNotBefore(ctx, js, dlq, d)
	default:
		out.Result = Redriven
	}
	return out, nil
}
