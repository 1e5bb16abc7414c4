package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
)

// DeadLetter is one message of a dead-letter stream, decoded from the
// headers Consume puts on it.
type DeadLetter struct {
	// Seq is the message's sequence number in the dead-letter stream: the
	// id that GetDeadLetter and Redrive take.
	Seq uint64
	// Consumer is the durable that gave up, Error its last error.
	Consumer, Error string
	// Subject and Stream are where the event was read from, Sequence its
	// sequence number there.
	Subject, Stream string
	Sequence        uint64
	Deliveries      int
	// Time is when it was dead-lettered.
	Time time.Time
	// EventID and EventType are empty when the body is not a CloudEvent.
	EventID, EventType string
	Data               []byte
	Header             nats.Header
}

// MaxListDeadLetters bounds what ListDeadLetters returns.
const MaxListDeadLetters = 1000

// ListDeadLetters returns the dead letters of stream (a dead-letter stream,
// DeadLetterStreamName(...)), oldest first, at most MaxListDeadLetters.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, stream string) ([]DeadLetter, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", stream, err)
	}
	var out []DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	// "Next message at or after seq" skips the gaps that deletions (a
	// redrive) leave, one request per dead letter.
	seq := info.State.FirstSeq
	for len(out) < MaxListDeadLetters && seq <= info.State.LastSeq {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(DeadLetterSubjectPrefix+".>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dead letter %d on %s: %w", seq, stream, err)
		}
		if m.Sequence > info.State.LastSeq {
			break
		}
		out = append(out, decodeDeadLetter(m))
		seq = m.Sequence + 1
	}
	return out, nil
}

// GetDeadLetter returns the dead letter with sequence number seq in stream.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) (DeadLetter, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead-letter stream %s: %w", stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d on %s: %w", seq, stream, err)
	}
	return decodeDeadLetter(m), nil
}

func decodeDeadLetter(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	d := DeadLetter{
		Seq:      m.Sequence,
		Consumer: h.Get(HeaderDLQConsumer),
		Error:    h.Get(HeaderDLQError),
		Subject:  h.Get(HeaderDLQSubject),
		Stream:   h.Get(HeaderDLQStream),
		Time:     m.Time,
		Data:     m.Data,
		Header:   h,
	}
	d.Sequence, _ = strconv.ParseUint(h.Get(HeaderDLQSequence), 10, 64)
	d.Deliveries, _ = strconv.Atoi(h.Get(HeaderDLQDeliveries))
	if t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderDLQTime)); err == nil {
		d.Time = t
	}
	if d.Subject == "" {
		// slipway-dlq.<durable>.<subject>
		parts := strings.SplitN(m.Subject, ".", 3)
		if len(parts) == 3 {
			if d.Consumer == "" {
				d.Consumer = parts[1]
			}
			d.Subject = parts[2]
		}
	}
	if e, err := events.FromMsg(m.Data); err == nil {
		d.EventID, d.EventType = e.ID(), e.Type()
	}
	return d
}

// RedriveNotBefore is when a redrive of d can first take effect: once the
// event stream has forgotten the event's id (its duplicate window, counted
// from when the original was stored). The zero time means it could not be
// told (the original has expired, say): a redrive is then only limited by
// what JetStream reports.
func RedriveNotBefore(ctx context.Context, js jetstream.JetStream, stream string, d DeadLetter) time.Time {
	var t time.Time
	if d.Stream != "" && d.Sequence != 0 {
		if s, err := js.Stream(ctx, d.Stream); err == nil {
			if info, err := s.Info(ctx); err == nil {
				if m, err := s.GetMsg(ctx, d.Sequence); err == nil {
					t = later(t, m.Time.Add(info.Config.Duplicates))
				}
			}
		}
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Redrive re-publishes dead letter seq of stream to its original subject,
// with its body, its original headers (Content-Type, traceparent, ...) and
// the event id as Nats-Msg-Id, then deletes it from the dead-letter stream.
//
// Because the id is the same, a redrive only takes effect once the event
// stream's duplicate window (10 minutes by default), counted from when the
// original was published, is over: before that JetStream drops the copy as
// a duplicate; Redrive then reports duplicate and keeps the dead letter (see
// RedriveNotBefore for when to retry). A redriven event that fails again is
// dead-lettered again: dead letters are keyed by stream position, not by
// event id.
//
// The redriven event is a new message on the event stream: every consumer
// whose filter matches it receives it again, not only the one that gave up,
// so handlers must be idempotent (as they already must).
func Redrive(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) (duplicate bool, err error) {
	d, err := GetDeadLetter(ctx, js, stream, seq)
	if err != nil {
		return false, err
	}
	if d.EventID == "" {
		return false, fmt.Errorf("dead letter %d is not a CloudEvent; nothing to redrive", seq)
	}
	if d.Subject == "" || !strings.HasPrefix(d.Subject, events.SubjectPrefix+".") {
		return false, fmt.Errorf("dead letter %d has no original subject under %s.>", seq, events.SubjectPrefix)
	}
	dls, err := js.Stream(ctx, stream)
	if err != nil {
		return false, fmt.Errorf("dead-letter stream %s: %w", stream, err)
	}
	m := nats.NewMsg(d.Subject)
	m.Data = d.Data
	for k, vs := range d.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "nats-") || strings.HasPrefix(lk, "slipway-dlq-") {
			continue
		}
		m.Header[k] = append([]string(nil), vs...)
	}
	m.Header.Set(events.HeaderMsgID, d.EventID)
	opts := []jetstream.PublishOpt{}
	if d.Stream != "" {
		opts = append(opts, jetstream.WithExpectStream(d.Stream))
	}
	ack, err := js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return false, fmt.Errorf("redrive dead letter %d to %s: %w", seq, d.Subject, err)
	}
	if ack.Duplicate {
		return true, nil
	}
	if err := dls.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, fmt.Errorf("dead letter %d redriven (stream %s, sequence %d) but not deleted: %w", seq, ack.Stream, ack.Sequence, err)
	}
	return false, nil
}
