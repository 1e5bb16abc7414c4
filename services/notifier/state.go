package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket records every notification sent, so that a redelivered event
// (after a crash, a lost ack, a restart) is not sent twice.
const StateBucket = "slipway-notifications"

// sentRecord is the value of a StateBucket key.
type sentRecord struct {
	Receiver  string    `json:"receiver"`
	EventID   string    `json:"eventId"`
	EventType string    `json:"eventType"`
	Channel   string    `json:"channel,omitempty"`
	SentAt    time.Time `json:"sentAt"`
}

type stateStore struct{ kv jetstream.KeyValue }

func openState(ctx context.Context, js jetstream.JetStream, replicas int, keep time.Duration) (*stateStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "Slipway notifier: notifications sent (receiver, event, channel)",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		// Past the stream's retention no event can come back.
		TTL: keep,
	})
	if err != nil {
		return nil, fmt.Errorf("notification state bucket: %w", err)
	}
	return &stateStore{kv: kv}, nil
}

// SentKey is the StateBucket key of one notification: the receiver, then a
// hash of the event id and the channel ("" for the receiver's own target).
func SentKey(receiver, eventID, channel string) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	h.Write([]byte{0})
	h.Write([]byte(channel))
	return receiver + "." + hex.EncodeToString(h.Sum(nil)[:16])
}

// sent reports whether the notification of key was recorded.
func (s *stateStore) sent(ctx context.Context, key string) (bool, error) {
	_, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("notification state: %w", err)
	}
	return true, nil
}

func (s *stateStore) record(ctx context.Context, key string, r sentRecord) error {
	b, _ := json.Marshal(r)
	_, err := s.kv.Put(ctx, key, b)
	return err
}
