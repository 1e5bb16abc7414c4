package promoter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket holds one record per promotion of one image by one rule, so a
// redelivered event never copies or announces twice.
const StateBucket = "slipway-promotions"

type outcome struct {
	Rule    string    `json:"rule"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Result  string    `json:"result"` // promoted | failed
	Error   string    `json:"error,omitempty"`
	EventID string    `json:"eventId"`
	DoneAt  time.Time `json:"doneAt"`
}

type stateStore struct{ kv jetstream.KeyValue }

func openState(ctx context.Context, js jetstream.JetStream, replicas int, keep time.Duration) (*stateStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "Slipway promoter: promotions done (rule, image)",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		TTL:         keep,
	})
	if err != nil {
		return nil, fmt.Errorf("promotion state bucket: %w", err)
	}
	return &stateStore{kv: kv}, nil
}

func (s *stateStore) done(ctx context.Context, key string) (*outcome, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var o outcome
	if err := json.Unmarshal(e.Value(), &o); err != nil {
		return nil, err
	}
	return &o, nil
}

func (s *stateStore) record(ctx context.Context, key string, o outcome) error {
	b, _ := json.Marshal(o)
	_, err := s.kv.Put(ctx, key, b)
	return err
}
