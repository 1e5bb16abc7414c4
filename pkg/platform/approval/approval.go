// Package approval keeps the approvals that gate promotions: one record per
// approval in the JetStream KV bucket slipway-approvals. The promoter creates
// them (approval.requested) and sweeps them; ingest's approval API and its
// Slack interactions decide them (approval.granted / approval.rejected); the
// CLI reads them. It is the contract between those services, so it lives
// with the shared plumbing rather than in either of them: neither service
// imports the other.
//
// A record's state lives only here: a decision is a compare-and-set on the
// record's KV revision, so of two approvers deciding at once exactly one
// wins, and a decision is final. The decision event is derived from the
// decided record (DecisionEvent), deterministically, so publishing it can be
// retried at any time and JetStream drops the copies.
//
// Records do not stay for ever: Sweep removes the decided and expired ones
// once a retention has passed (the promoter runs it). Per-key TTLs of the
// KV would not do: a TTL is set when a key is created, not by the update
// that decides it, older revisions would outlive it, and a bucket needs a
// server of 2.11 or later to allow them at all.
package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
)

// Bucket is the KV bucket of the approvals.
const Bucket = "slipway-approvals"

// Source is the CloudEvents source of the decision events: decisions are
// taken through ingest's approval API.
const Source = "/slipway/ingest/approvals"

// State is where an approval stands.
type State string

// The states of an approval. Only Pending changes: to Granted or Rejected by
// Decide, or to Expired by the passing of ExpiresAt (see Record.StateAt).
const (
	Pending  State = "pending"
	Granted  State = "granted"
	Rejected State = "rejected"
	Expired  State = "expired"
)

// ParseState accepts the name of a state.
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case Pending, Granted, Rejected, Expired:
		return st, nil
	}
	return "", fmt.Errorf("unknown approval state %q (pending, granted, rejected, expired)", s)
}

// Record is one approval.
type Record struct {
	// ID is the approval's id, deterministic (the promoter derives it from
	// the rule and the images), and its KV key.
	ID string `json:"id"`
	// Promotion is the name of the promotion rule.
	Promotion string          `json:"promotion"`
	From      events.ImageRef `json:"from"`
	To        events.ImageRef `json:"to"`
	// Approvers may decide, and so may the members of Groups (the rule's
	// approval.groups); both empty means any configured approver.
	Approvers   []string  `json:"approvers,omitempty"`
	Groups      []string  `json:"groups,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	// ExpiresAt ends a pending approval; zero means it never expires.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// State as stored; use StateAt for what it is now.
	State     State  `json:"state"`
	DecidedBy string `json:"decidedBy,omitempty"`
	// Via is the interface the decision came through (api, slack,
	// console); empty for decisions taken before it was recorded.
	Via       string    `json:"via,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	// CauseID is the id of the event that asked for the approval: the
	// causation of the decision events.
	CauseID string `json:"causeId,omitempty"`
	// Environment is the target environment: the subject's environment of
	// the decision events.
	Environment string `json:"environment"`
	// EventPending is set with the decision and cleared (Announced) once
	// its event is stored: while it is set, the decider repeating the
	// decision publishes the event again, and Sweep keeps the record.
	EventPending bool `json:"eventPending,omitempty"`

	// Repeat is set by Decide, never stored: this call repeated the
	// decision the same approver had already taken, whose event was not
	// stored yet (nothing was written; the record is as decided the first
	// time).
	Repeat bool `json:"-"`
}

// StateAt is the record's state at now: a pending approval whose ExpiresAt
// has passed is Expired.
func (r Record) StateAt(now time.Time) State {
	if r.State == Pending && r.expired(now) {
		return Expired
	}
	return r.State
}

func (r Record) expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
}

// RemovableAt is when r may leave the bucket, retention after it was
// decided or expired; ok is false while r must stay: pending (until it
// expires; for ever without ExpiresAt), or decided with its event not
// stored yet (EventPending).
func (r Record) RemovableAt(retention time.Duration) (at time.Time, ok bool) {
	switch r.State {
	case Granted, Rejected:
		if r.EventPending || r.DecidedAt.IsZero() {
			return time.Time{}, false
		}
		return r.DecidedAt.Add(retention), true
	}
	if r.ExpiresAt.IsZero() {
		return time.Time{}, false
	}
	return r.ExpiresAt.Add(retention), true
}

// Allowed reports whether id may decide r: id is named among Approvers,
// or is in one of Groups, or r names neither (any approver may). Whether id
// may approve in r's environment at all is the interface's check (its
// roles), not the record's.
func (r Record) Allowed(id access.Identity) bool {
	if len(r.Approvers) == 0 && len(r.Groups) == 0 {
		return true
	}
	return slices.Contains(r.Approvers, id.Name) || slices.ContainsFunc(r.Groups, func(g string) bool { return slices.Contains(id.Groups, g) })
}

// Errors of Get and Decide; test them with errors.Is.
var (
	ErrNotFound   = errors.New("approval not found")
	ErrDecided    = errors.New("approval already decided")
	ErrExpired    = errors.New("approval expired")
	ErrNotAllowed = errors.New("approver not allowed on this promotion")
)

// Store reads and writes the approvals.
type Store struct {
	kv jetstream.KeyValue
	js jetstream.JetStream // Sweep purges the bucket's stream
}

// Open creates the bucket, or updates it to the replica count, and returns
// the store. The promoter and ingest both call it (whichever starts first
// creates the bucket); readers use Bind.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Slipway: approvals of promotions (pending, granted, rejected, expired)",
		History:     5,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("approvals bucket: %w", err)
	}
	return &Store{kv: kv, js: js}, nil
}

// Bind returns the store of an existing bucket.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("approvals bucket %s: %w (has a promoter or ingest run yet?)", Bucket, err)
	}
	return &Store{kv: kv, js: js}, nil
}

// Create stores a new record. It is idempotent on r.ID: created is false,
// and nothing is written, when a record with that id exists (whatever its
// state). An empty State is stored as Pending.
func (s *Store) Create(ctx context.Context, r Record) (created bool, err error) {
	if r.ID == "" {
		return false, errors.New("approval: record without an id")
	}
	if r.State == "" {
		r.State = Pending
	}
	r.Repeat = false
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	_, err = s.kv.Create(ctx, r.ID, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("approval %s: %w", r.ID, err)
	}
	return true, nil
}

// Get returns a record, or ErrNotFound (also for an id that cannot be a key).
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	r, _, err := s.get(ctx, id)
	return r, err
}

func (s *Store) get(ctx context.Context, id string) (Record, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, 0, fmt.Errorf("approval %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("approval %s: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, 0, fmt.Errorf("approval %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// List returns every record, newest request first (ties by id).
func (s *Store) List(ctx context.Context) ([]Record, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	var out []Record
	for key := range lister.Keys() {
		r, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between listing and reading
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RequestedAt.Equal(out[j].RequestedAt) {
			return out[i].RequestedAt.After(out[j].RequestedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Sweep removes every record whose RemovableAt(retention) is not after
// now, and returns how many it removed and the decided records whose
// event is not stored yet (EventPending; the caller may publish
// DecisionEvent and call Announced).
//
// A record is removed with all its revisions and leaves no delete marker:
// the bucket's stream is purged on the record's key up to the revision
// that was read. So the purge is conditional like a compare-and-set: a
// record written again in the meantime (an approval created anew under the
// same id) stays. Several replicas sweeping at once purge the same
// revisions, and one that stops half-way leaves every record either whole
// or gone; the next sweep carries on.
func (s *Store) Sweep(ctx context.Context, now time.Time, retention time.Duration) (removed int, unannounced []Record, err error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("approvals: %w", err)
	}
	var keys []string
	for key := range lister.Keys() {
		keys = append(keys, key)
	}
	var stream jetstream.Stream
	for _, key := range keys {
		r, rev, err := s.get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return removed, unannounced, err
		}
		if r.EventPending {
			unannounced = append(unannounced, r)
		}
		if at, ok := r.RemovableAt(retention); !ok || now.Before(at) {
			continue
		}
		if stream == nil {
			if stream, err = s.js.Stream(ctx, "KV_"+Bucket); err != nil {
				return removed, unannounced, fmt.Errorf("approvals bucket's stream: %w", err)
			}
		}
		// Sequence: everything on the key before revision+1.
		err = stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+Bucket+"."+key), jetstream.WithPurgeSequence(rev+1))
		if err != nil {
			return removed, unannounced, fmt.Errorf("approval %s: removing: %w", key, err)
		}
		removed++
	}
	return removed, unannounced, nil
}

// maxConflicts bounds Decide's compare-and-set retries. A conflict means
// someone else wrote the record; the next read sees that decision, so a
// second round normally ends it.
const maxConflicts = 10

// Decide is DecideAs for an approver known by name alone, through no
// particular interface.
func (s *Store) Decide(ctx context.Context, id, approver string, grant bool, reason string, now time.Time) (Record, error) {
	return s.DecideAs(ctx, id, access.Identity{Name: approver}, grant, reason, now)
}

// DecideAs records the decision of who (grant or reject, with reason) on
// the approval id at now, and the interface it came through (who.Via), with
// a compare-and-set on the record's KV revision: of concurrent deciders
// exactly one wins, and a decision is final.
//
// The outcomes, checked in this order:
//
//   - no such record: ErrNotFound.
//   - who may not decide r (Allowed): the record and ErrNotAllowed,
//     whatever its state.
//   - already decided by the same approver the same way (grant after grant,
//     reject after reject) while its event is not stored (EventPending):
//     the record as decided then, with Repeat set, and a nil error — even
//     past ExpiresAt, and whatever reason is given this time (the first
//     one stands). This is the retry after a decision whose event could
//     not be published: publish DecisionEvent(r) again (its id is the
//     same, so JetStream drops a copy), then call Announced.
//   - already decided otherwise (another approver, the other way, or the
//     same decision whose event is stored): the record and ErrDecided.
//     Nothing changes: a decision is final, and so is its reason.
//   - pending but past ExpiresAt (or stored as Expired): the record and
//     ErrExpired.
//   - otherwise the record is written as Granted or Rejected, with
//     DecidedBy, Via, Reason, DecidedAt (now, UTC) and EventPending, and
//     returned with a nil error; the caller publishes DecisionEvent(r),
//     then calls Announced.
//
// Decide never returns ErrDecided together with Repeat.
func (s *Store) DecideAs(ctx context.Context, id string, who access.Identity, grant bool, reason string, now time.Time) (Record, error) {
	approver := who.Name
	want := Rejected
	if grant {
		want = Granted
	}
	for range maxConflicts {
		r, rev, err := s.get(ctx, id)
		if err != nil {
			return Record{}, err
		}
		if !r.Allowed(who) {
			return r, fmt.Errorf("approval %s: %s: %w", id, approver, ErrNotAllowed)
		}
		switch r.State {
		case Granted, Rejected:
			if r.DecidedBy == approver && r.State == want && r.EventPending {
				r.Repeat = true
				return r, nil
			}
			return r, fmt.Errorf("approval %s: %s by %s at %s: %w", id, r.State, r.DecidedBy, r.DecidedAt.UTC().Format(time.RFC3339), ErrDecided)
		case Expired:
			return r, fmt.Errorf("approval %s: %w", id, ErrExpired)
		}
		if r.expired(now) {
			return r, fmt.Errorf("approval %s: at %s: %w", id, r.ExpiresAt.UTC().Format(time.RFC3339), ErrExpired)
		}
		r.State, r.DecidedBy, r.Via, r.Reason, r.DecidedAt, r.EventPending = want, approver, who.Via, reason, now.UTC(), true
		b, err := json.Marshal(r)
		if err != nil {
			return Record{}, err
		}
		_, err = s.kv.Update(ctx, id, b, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // someone else wrote it first: read their decision
		}
		if err != nil {
			return Record{}, fmt.Errorf("approval %s: %w", id, err)
		}
		return r, nil
	}
	return Record{}, fmt.Errorf("approval %s: the record kept changing under %d attempts to decide it", id, maxConflicts)
}

// Announced records that the decision event of approval id is stored:
// from now on the decider repeating the decision gets ErrDecided, and Sweep
// may remove the record once it is old enough. A record that is not
// decided, or already announced, or gone, is left alone.
func (s *Store) Announced(ctx context.Context, id string) error {
	for range maxConflicts {
		r, rev, err := s.get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !r.EventPending {
			return nil
		}
		r.EventPending = false
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = s.kv.Update(ctx, id, b, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return fmt.Errorf("approval %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("approval %s: the record kept changing under %d attempts to mark it announced", id, maxConflicts)
}

// Publisher stores an event in JetStream and returns once it is stored
// (bus.Publisher does).
type Publisher interface {
	Publish(ctx context.Context, e events.Event) (duplicate bool, err error)
}

// Errors of Announce. With ErrNoEvent and ErrEventNotStored the decision
// stands and its record stays EventPending: the decider repeating the
// decision, or the promoter's sweep, announces it again. With ErrNotMarked
// the event is stored; only the record still says otherwise, until a sweep
// announces it again (JetStream drops the copy).
var (
	ErrNoEvent        = errors.New("the decision's event cannot be built")
	ErrEventNotStored = errors.New("the decision's event is not stored")
	ErrNotMarked      = errors.New("the decision's event is stored, but not marked so in the record")
)

// Announce is the second half of every decision: it publishes the decision
// event of the decided record r (DecisionEvent), then marks r announced
// (Announced). Ingest calls it after Decide; the promoter's sweep calls it
// for the decisions whose decider stopped in between. It returns the event
// once it is built, and r with EventPending cleared once it is marked.
func (s *Store) Announce(ctx context.Context, pub Publisher, r Record) (Record, events.Event, error) {
	e, err := DecisionEvent(ctx, r)
	if err != nil { // a record written without what an event needs
		return r, events.Event{}, fmt.Errorf("%w: %w", ErrNoEvent, err)
	}
	if _, err := pub.Publish(ctx, e); err != nil {
		return r, e, fmt.Errorf("%w: %w", ErrEventNotStored, err)
	}
	if err := s.Announced(ctx, r.ID); err != nil {
		return r, e, fmt.Errorf("%w: %w", ErrNotMarked, err)
	}
	r.EventPending = false
	return r, e, nil
}

// DecisionEvent is the approval.granted or approval.rejected event of a
// decided record. It depends on the record only (its time is DecidedAt), so
// publishing it again gives the same event: id events.CausedID(r.ID, type),
// causation r.CauseID, subject r.To, environment r.Environment.
func DecisionEvent(ctx context.Context, r Record) (events.Event, error) {
	var t events.Type
	switch r.State {
	case Granted:
		t = events.TypeApprovalGranted
	case Rejected:
		t = events.TypeApprovalRejected
	default:
		return events.Event{}, fmt.Errorf("approval %s is %s, not decided", r.ID, r.State)
	}
	return events.New(ctx, events.Spec{
		ID:          events.CausedID(r.ID, t),
		Type:        t,
		Source:      Source,
		Environment: r.Environment,
		Subject:     r.To.String(),
		CausationID: r.CauseID,
		Time:        r.DecidedAt,
		Data:        events.ApprovalDecision{ApprovalID: r.ID, Promotion: r.Promotion, By: r.DecidedBy, Reason: r.Reason, Via: r.Via},
	})
}
