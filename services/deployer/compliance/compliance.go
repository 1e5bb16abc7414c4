// Package compliance is the record of the compliance rules that managed
// workloads break now: one entry per (cluster, workload, rule), kept in a
// JetStream KV bucket by the deployer's periodic check and read by
// `slipway compliance`. An entry exists while the violation lasts and is
// deleted once the workload complies again.
package compliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// Bucket is the KV bucket of the violations.
const Bucket = "slipway-compliance"

// Violation is one rule one workload breaks.
type Violation struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	AppID       string `json:"appId"`
	// Rule is the rule's name in compliance[], Kind what it checks.
	Rule   string `json:"rule"`
	Kind   string `json:"kind"`
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	Detail string `json:"detail"`
	// Since is when the check first found it.
	Since time.Time `json:"since"`
	// Occurrence is the KV revision that created the entry: the same for
	// every deployer replica, different each time the violation comes
	// back, so the announcement's event id is both deterministic and new.
	Occurrence uint64 `json:"occurrence,omitempty"`
	// EventID is the compliance.violated event that announced it; empty
	// until it is published.
	EventID string `json:"eventId,omitempty"`
}

// Key is the KV key of a rule of a workload: the inventory's key of the
// workload, then the rule's name (lowercase letters, digits, '-', '_').
func Key(cluster, appID, rule string) string {
	return inventory.Key(cluster, appID) + "." + rule
}

// Store reads and writes the violations.
type Store struct{ kv jetstream.KeyValue }

// Open creates the bucket, or updates it to the replica count: the
// deployer opens it; readers use Bind.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Slipway: compliance rules that running workloads break",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("compliance bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// ErrNoBucket means no deployer has created the bucket yet.
var ErrNoBucket = errors.New("no compliance record yet: no deployer has run")

// Bind returns the store of an existing bucket; ErrNoBucket when there is
// none.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoBucket
	}
	if err != nil {
		return nil, fmt.Errorf("compliance bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Entry is a stored violation with its KV revision.
type Entry struct {
	Violation
	Revision uint64
}

// Create stores v unless its key exists: false when another deployer (or
// an earlier pass) recorded it first. It returns the new revision.
func (s *Store) Create(ctx context.Context, v Violation) (uint64, bool, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, false, err
	}
	rev, err := s.kv.Create(ctx, Key(v.Cluster, v.AppID, v.Rule), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("compliance %s %s %s: %w", v.Cluster, v.AppID, v.Rule, err)
	}
	return rev, true, nil
}

// Update stores v if its entry is still at rev.
func (s *Store) Update(ctx context.Context, v Violation, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, Key(v.Cluster, v.AppID, v.Rule), b, rev)
	return err
}

// Delete removes the entry of key if it is still at rev (a violation that
// came back meanwhile is kept).
func (s *Store) Delete(ctx context.Context, key string, rev uint64) error {
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// Cluster returns the entries of a cluster, by key.
func (s *Store) Cluster(ctx context.Context, cluster string) (map[string]Entry, error) {
	return s.list(ctx, cluster+".>")
}

// List returns every violation, sorted by cluster, workload and rule.
func (s *Store) List(ctx context.Context) ([]Violation, error) {
	m, err := s.list(ctx, ">")
	if err != nil {
		return nil, err
	}
	out := make([]Violation, 0, len(m))
	for _, e := range m {
		out = append(out, e.Violation)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		if a.AppID != b.AppID {
			return a.AppID < b.AppID
		}
		return a.Rule < b.Rule
	})
	return out, nil
}

func (s *Store) list(ctx context.Context, filter string) (map[string]Entry, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := map[string]Entry{}
	for key := range lister.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted between listing and reading
		}
		if err != nil {
			return nil, err
		}
		var v Violation
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return nil, fmt.Errorf("compliance key %s: %w", key, err)
		}
		out[key] = Entry{Violation: v, Revision: e.Revision()}
	}
	return out, nil
}
