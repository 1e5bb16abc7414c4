package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
)

// Publisher puts events on the stream and waits for JetStream's ack, so that
// an event counts as published only once it is stored (on a quorum of
// replicas in a cluster).
type Publisher struct {
	js     jetstream.JetStream
	stream string
}

// NewPublisher returns a publisher that expects the acks to come from stream
// (empty: DefaultStream), guarding against a subject captured elsewhere.
func NewPublisher(js jetstream.JetStream, stream string) *Publisher {
	if stream == "" {
		stream = DefaultStream
	}
	return &Publisher{js: js, stream: stream}
}

// Publish stores e and reports whether JetStream had already stored an event
// with the same id inside its duplicate window.
func (p *Publisher) Publish(ctx context.Context, e events.Event) (duplicate bool, err error) {
	m, err := events.ToMsg(e)
	if err != nil {
		return false, err
	}
	ack, err := p.js.PublishMsg(ctx, m, jetstream.WithExpectStream(p.stream))
	if err != nil {
		return false, fmt.Errorf("publish %s %s: %w", e.Type(), e.ID(), err)
	}
	return ack.Duplicate, nil
}
