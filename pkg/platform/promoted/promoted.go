// Package promoted remembers which digests Slipway promoted into which
// environment, so that a cluster that deploys only promoted images (accept:
// promoted) can tell the promoted copy arriving by the target registry's
// webhook from an image somebody pushed there directly.
//
// The promoter writes a record before it starts copying, so the record is
// there before the target registry can announce the push; the deployer
// reads it. It is the contract between those two services, so it lives with
// the shared plumbing: neither service imports the other.
package promoted

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket of the records.
const Bucket = "slipway-promoted"

// Record says that Digest is being (or was) promoted into Environment.
type Record struct {
	Environment string `json:"environment"`
	Digest      string `json:"digest"`
	// Repository and Tag are where the promotion puts the image in the
	// environment's registry.
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	// Rule is the name of the promotion rule.
	Rule string `json:"rule"`
	// CauseID is the id of the event that set the promotion off: the
	// image.pushed of the source, or the approval.granted.
	CauseID string `json:"causeId"`
	// ApprovalID and Approver are set when the promotion was approved.
	ApprovalID string    `json:"approvalId,omitempty"`
	Approver   string    `json:"approver,omitempty"`
	At         time.Time `json:"at"`
}

// Store reads and writes the records.
type Store struct{ kv jetstream.KeyValue }

// Open creates the bucket (or updates it to replicas and keep) and returns
// the store. Records expire after keep, the event stream's max age: no
// event older than that can still be delivered and ask about them. Both
// the promoter and the deployer open it, whichever starts first.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, keep time.Duration) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Slipway: digests promoted into each environment",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		TTL:         keep,
	})
	if err != nil {
		return nil, fmt.Errorf("promoted bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Key is the KV key of a digest in an environment: "prd.sha256.<hex>".
func Key(environment, digest string) string {
	return environment + "." + strings.ReplaceAll(digest, ":", ".")
}

// Put stores a record.
func (s *Store) Put(ctx context.Context, r Record) (revision uint64, err error) {
	if r.Environment == "" || r.Digest == "" {
		return 0, errors.New("promoted record: environment and digest are required")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Put(ctx, Key(r.Environment, r.Digest), b)
	if err != nil {
		return 0, fmt.Errorf("promoted %s %s: %w", r.Environment, r.Digest, err)
	}
	return rev, nil
}

// Get returns the record of digest in environment, and whether there is
// one.
func (s *Store) Get(ctx context.Context, environment, digest string) (Record, bool, error) {
	if digest == "" {
		return Record{}, false, nil
	}
	e, err := s.kv.Get(ctx, Key(environment, digest))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("promoted %s %s: %w", environment, digest, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, false, fmt.Errorf("promoted %s %s: %w", environment, digest, err)
	}
	return r, true, nil
}

// Bind returns the store of an existing bucket, for readers that must not
// change its settings.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("promoted bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}
