package auth

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

// The buckets the console keeps its logins in. Every console replica
// shares them, and they survive a restart: a user stays logged in across
// a rolling update.
const (
	// SessionBucket holds the sessions, one per login; its TTL is
	// console.sessionTTL.
	SessionBucket = "slipway-console-sessions"
	// LoginBucket holds the logins under way (state, nonce, PKCE verifier)
	// between /auth/login and /auth/callback.
	LoginBucket = "slipway-console-logins"
)

// store keeps records of type T in a KV bucket under the hash of a random
// id that only the browser holds (in a cookie). Keys are hashes so that
// whoever may list the bucket (an operator, a NATS user with read access)
// learns nothing that lets them take over a login.
type store[T any] struct{ kv jetstream.KeyValue }

func openStore[T any](ctx context.Context, js jetstream.JetStream, bucket, description string, replicas int, ttl time.Duration) (*store[T], error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: description,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		// A record older than this is of no use: the bucket forgets it
		// even when nobody logs out.
		TTL: ttl,
	})
	if err != nil {
		return nil, fmt.Errorf("%s bucket: %w", bucket, err)
	}
	return &store[T]{kv: kv}, nil
}

func storeKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (s *store[T]) put(ctx context.Context, id string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, storeKey(id), b)
	return err
}

// get returns the record of id; found is false when there is none (never
// written, deleted, or past the bucket's TTL).
func (s *store[T]) get(ctx context.Context, id string) (v T, rev uint64, found bool, err error) {
	if id == "" {
		return v, 0, false, nil
	}
	e, err := s.kv.Get(ctx, storeKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, false, nil
	}
	if err != nil {
		return v, 0, false, err
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, false, fmt.Errorf("stored record: %w", err)
	}
	return v, e.Revision(), true, nil
}

// take returns the record of id and deletes it, once: of two requests
// taking the same record, only one gets it (a login's state is single-use).
func (s *store[T]) take(ctx context.Context, id string) (v T, found bool, err error) {
	v, rev, found, err := s.get(ctx, id)
	if err != nil || !found {
		return v, false, err
	}
	if err := s.kv.Delete(ctx, storeKey(id), jetstream.LastRevision(rev)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return v, false, nil
		}
		return v, false, err
	}
	return v, true, nil
}

func (s *store[T]) delete(ctx context.Context, id string) error {
	return s.kv.Delete(ctx, storeKey(id))
}
