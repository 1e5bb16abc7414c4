package slack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream KV bucket where the bot mode keeps its threads:
// one entry per (receiver, channel, thread) with the parent message's
// channel id and ts.
const Bucket = "slipway-slack-threads"

// Timings of the thread parents (see the package documentation).
const (
	// threadsMaxAge ends a thread: an entry not written for this long is
	// dropped, and the next message of that release starts a new parent.
	threadsMaxAge = 30 * 24 * time.Hour
	// claimTTL is how long a claim (a parent being created) is honoured;
	// an older one was left by a delivery that died, and is taken over.
	// It is well above parentPostTimeout plus the KV write.
	claimTTL = time.Minute
	// parentPostTimeout bounds the chat.postMessage of a parent.
	parentPostTimeout = 20 * time.Second
	// claimWait is how long Notify waits for another delivery's fresh
	// claim before it gives up with a retryable error.
	claimWait = 15 * time.Second
	// historyPages bounds the search of a channel's history for the parent
	// of a delivery that died.
	historyPages = 10
	// clockSkew is allowed between Slipway's clock and Slack's when
	// searching the history from a claim's time.
	clockSkew = 5 * time.Minute
)

// metadataType is the event_type of the metadata every parent carries:
// {"key": <thread key>}. It finds the parent of a delivery that died
// between posting it and recording it.
const metadataType = "slipway_thread"

// entry is a thread's KV value.
type entry struct {
	// Channel and TS name the parent; both "" while it is being created
	// (a claim).
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	// ClaimedAt is when the claim was written; Claimant who wrote it (a
	// random id per attempt).
	ClaimedAt time.Time `json:"claimedAt,omitzero"`
	Claimant  string    `json:"claimant,omitempty"`
	// Unsure marks a claim whose chat.postMessage ended without an answer
	// (a timeout): the parent may exist, so the next attempt searches the
	// history at once instead of waiting for claimTTL.
	Unsure bool `json:"unsure,omitempty"`
	// Shown is the time of the event whose status the parent shows: an
	// older event (a retry, a slow replica) does not overwrite a newer
	// status.
	Shown time.Time `json:"shown,omitzero"`
}

func (e entry) resolved() bool { return e.TS != "" }

// ThreadKey is the KV key of a thread: the receiver's name and the channel
// (made key-safe, for people reading the bucket) and a hash of receiver,
// channel and thread (which makes it unique).
func ThreadKey(receiver, channel, thread string) string {
	h := sha256.Sum256([]byte(receiver + "\x00" + channel + "\x00" + thread))
	return keySafe(receiver) + "." + keySafe(channel) + "." + hex.EncodeToString(h[:16])
}

// channelKey is the KV key that remembers a channel's id (Slack's answer
// to the first post), which the history search needs.
func channelKey(receiver, channel string) string {
	h := sha256.Sum256([]byte(receiver + "\x00" + channel))
	return keySafe(receiver) + "._channels." + hex.EncodeToString(h[:16])
}

// keySafe maps s to KV key characters.
func keySafe(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
	if s == "" {
		return "_"
	}
	return s
}

// threads is the bucket, and the in-process locks that serialise the
// messages of one thread (one parent, replies in order, the parent's
// status from the last one). Across processes the claims in the bucket
// (compare-and-set) keep it to one parent.
type threads struct {
	kv jetstream.KeyValue

	mu    sync.Mutex
	locks map[string]*keyLock
}

// keyLock is the lock of one thread key, dropped when no one holds or
// waits for it.
type keyLock struct {
	ch   chan struct{}
	refs int
}

func openThreads(ctx context.Context, js jetstream.JetStream, replicas int) (*threads, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Slipway: Slack thread parents per release (receiver, channel, image digest)",
		History:     1,
		TTL:         threadsMaxAge,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("slack threads bucket %s: %w", Bucket, err)
	}
	return &threads{kv: kv, locks: map[string]*keyLock{}}, nil
}

// lock takes the in-process lock of key, or gives up with ctx.
func (t *threads) lock(ctx context.Context, key string) (unlock func(), err error) {
	t.mu.Lock()
	l := t.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		t.locks[key] = l
	}
	l.refs++
	t.mu.Unlock()
	done := func() {
		t.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(t.locks, key)
		}
		t.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// get returns a thread's entry and revision; ok is false when there is
// none.
func (t *threads) get(ctx context.Context, key string) (e entry, rev uint64, ok bool, err error) {
	kve, err := t.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return entry{}, 0, false, nil
	}
	if err != nil {
		return entry{}, 0, false, fmt.Errorf("slack threads: %w", err)
	}
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		// Not ours to read: treat it as a claim that died.
		return entry{Unsure: true}, kve.Revision(), true, nil
	}
	return e, kve.Revision(), true, nil
}

// claim writes a claim on key: created (rev 0) or over the stale one at
// rev. ok is false when someone else wrote first.
func (t *threads) claim(ctx context.Context, key string, rev uint64, now time.Time) (newRev uint64, claimant string, ok bool, err error) {
	claimant = randomID()
	b, _ := json.Marshal(entry{ClaimedAt: now.UTC(), Claimant: claimant})
	if rev == 0 {
		newRev, err = t.kv.Create(ctx, key, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, "", false, nil
		}
	} else {
		newRev, err = t.kv.Update(ctx, key, b, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return 0, "", false, nil
		}
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("slack threads: claiming %s: %w", key, err)
	}
	return newRev, claimant, true, nil
}

// put writes e over rev. A lost race (someone took the claim over) is
// ErrKeyRevisionMismatch.
func (t *threads) put(ctx context.Context, key string, e entry, rev uint64) (uint64, error) {
	b, _ := json.Marshal(e)
	r, err := t.kv.Update(ctx, key, b, rev)
	if err != nil {
		return 0, fmt.Errorf("slack threads: writing %s: %w", key, err)
	}
	return r, nil
}

// release drops key if it is still at rev (a claim given up, a parent that
// is gone).
func (t *threads) release(ctx context.Context, key string, rev uint64) error {
	err := t.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("slack threads: releasing %s: %w", key, err)
	}
	return nil
}

// waitChange returns when key's entry is no longer the one at rev, or at
// the deadline; the caller reads it again either way.
func (t *threads) waitChange(ctx context.Context, key string, rev uint64, deadline time.Time) error {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := t.kv.Watch(wctx, key)
	if err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return nil
		}
		return fmt.Errorf("slack threads: watching %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case kve, open := <-w.Updates():
			if !open {
				return nil
			}
			if kve != nil && kve.Revision() != rev {
				return nil
			}
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
	}
}

// channelID returns the remembered id of a channel, "" if none.
func (t *threads) channelID(ctx context.Context, receiver, channel string) string {
	kve, err := t.kv.Get(ctx, channelKey(receiver, channel))
	if err != nil {
		return ""
	}
	return string(kve.Value())
}

// rememberChannel stores a channel's id.
func (t *threads) rememberChannel(ctx context.Context, receiver, channel, id string) error {
	_, err := t.kv.Put(ctx, channelKey(receiver, channel), []byte(id))
	return err
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
