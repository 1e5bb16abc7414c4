package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
)

// DefaultRecentEvents is how many recent events the console keeps when
// console.events is not set: a busy installation's day or so, a few tens
// of MiB of memory.
const DefaultRecentEvents = 20000

// stored is one event of the recent-event store, decoded once, with what
// the views and the live stream filter on.
type stored struct {
	// seq is the event's sequence in the stream: the SSE event id.
	seq uint64
	ev  events.Event
	// env is the environment the event was published for (its subject's),
	// typ its short type ("image.pushed").
	env, typ string
	// repos are the repositories the event is about (a promotion's source
	// and target), digests the image digests it names.
	repos, digests []string
}

// eventStore keeps the most recent events of the stream in memory, in
// stream order, with small indexes for the image pages (by digest, by
// causation, by id). It follows the stream with an ordered consumer, which
// recreates itself after a NATS reconnect from where it left off; its
// memory is bounded by count, whatever the traffic.
type eventStore struct {
	log  *slog.Logger
	size int

	mu sync.RWMutex
	// ring holds at most size events; head is the oldest one's index once
	// the ring is full.
	ring []*stored
	head int
	// bySeq finds an event of the ring; byID, byDigest and byCausation
	// hold sequences, each list ascending (appended in stream order, so
	// the oldest is first when the ring drops it).
	bySeq       map[uint64]*stored
	byID        map[string]uint64
	byDigest    map[string][]uint64
	byCausation map[string][]uint64
	// last is the sequence of the newest event read; target the stream's
	// last sequence when the store started: the store has caught up once
	// last reaches it.
	last, target uint64
	caught       bool

	// onAppend, when set, is called with each new event, outside the lock,
	// in stream order (the live stream's hub).
	onAppend func(*stored)

	cc jetstream.ConsumeContext
}

func newEventStore(size int, log *slog.Logger) *eventStore {
	if size <= 0 {
		size = DefaultRecentEvents
	}
	return &eventStore{
		log: log, size: size,
		bySeq:       map[uint64]*stored{},
		byID:        map[string]uint64{},
		byDigest:    map[string][]uint64{},
		byCausation: map[string][]uint64{},
	}
}

// start follows stream from its last size events on.
func (st *eventStore) start(ctx context.Context, js jetstream.JetStream, stream string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("recent events: stream %s: %w", stream, err)
	}
	state := s.CachedInfo().State
	first := state.FirstSeq
	if state.LastSeq >= uint64(st.size) && state.LastSeq-uint64(st.size)+1 > first {
		first = state.LastSeq - uint64(st.size) + 1
	}
	st.mu.Lock()
	st.target = state.LastSeq
	st.caught = state.Msgs == 0 || state.LastSeq < first
	st.mu.Unlock()
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if first > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, first
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("recent events: %w", err)
	}
	st.cc, err = cons.Consume(st.receive, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The ordered consumer recreates itself after these (a reconnect,
		// a missed heartbeat); they are worth a line, not an alarm.
		st.log.Debug("recent events: consumer interrupted", "error", err)
	}))
	if err != nil {
		return fmt.Errorf("recent events: %w", err)
	}
	return nil
}

func (st *eventStore) stop() {
	if st.cc != nil {
		st.cc.Stop()
	}
}

func (st *eventStore) receive(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	ev, err := events.FromMsg(m.Data())
	if err != nil {
		// Foreign messages on slipway.> are not the console's to judge;
		// they only advance the position.
		st.advance(md.Sequence.Stream, md.NumPending)
		return
	}
	st.add(md.Sequence.Stream, ev, md.NumPending)
}

func (st *eventStore) advance(seq, pending uint64) {
	st.mu.Lock()
	st.last = max(st.last, seq)
	if pending == 0 || st.last >= st.target {
		st.caught = true
	}
	st.mu.Unlock()
}

// add stores ev read at stream sequence seq, dropping the oldest event
// when the ring is full.
func (st *eventStore) add(seq uint64, ev events.Event, pending uint64) {
	e := describe(seq, ev)
	st.mu.Lock()
	if _, dup := st.bySeq[seq]; dup { // a redelivery after a reconnect
		st.mu.Unlock()
		return
	}
	if len(st.ring) < st.size {
		st.ring = append(st.ring, e)
	} else {
		st.drop(st.ring[st.head])
		st.ring[st.head] = e
		st.head = (st.head + 1) % st.size
	}
	st.bySeq[seq] = e
	st.byID[ev.ID()] = seq
	for _, d := range e.digests {
		st.byDigest[d] = append(st.byDigest[d], seq)
	}
	if c := events.CausationOf(ev); c != "" {
		st.byCausation[c] = append(st.byCausation[c], seq)
	}
	st.last = max(st.last, seq)
	if pending == 0 || st.last >= st.target {
		st.caught = true
	}
	notify := st.onAppend
	st.mu.Unlock()
	if notify != nil {
		notify(e)
	}
}

// drop removes the oldest event from the indexes; its sequence is the
// first of each of its index lists.
func (st *eventStore) drop(old *stored) {
	delete(st.bySeq, old.seq)
	if st.byID[old.ev.ID()] == old.seq {
		delete(st.byID, old.ev.ID())
	}
	for _, d := range old.digests {
		unindex(st.byDigest, d, old.seq)
	}
	if c := events.CausationOf(old.ev); c != "" {
		unindex(st.byCausation, c, old.seq)
	}
}

func unindex(idx map[string][]uint64, key string, seq uint64) {
	l := idx[key]
	if i := slices.Index(l, seq); i >= 0 {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(idx, key)
		return
	}
	idx[key] = l
}

// caughtUp reports whether the store has read what the stream held when
// it started (/readyz).
func (st *eventStore) caughtUp(context.Context) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if !st.caught {
		return fmt.Errorf("recent events: read up to sequence %d of %d", st.last, st.target)
	}
	return nil
}

// ordered calls f on the stored events, newest first, until it returns
// false. The caller holds the read lock.
func (st *eventStore) newestFirst(f func(*stored) bool) {
	n := len(st.ring)
	for i := n - 1; i >= 0; i-- {
		if !f(st.ring[(st.head+i)%n]) {
			return
		}
	}
}

// ByDigest returns the stored events that name digest (an image event's
// digest, a promotion's source or target digest, a deployment's digest),
// in stream order: an image page's causal timeline.
func (st *eventStore) ByDigest(digest string) []events.Event {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.eventsOf(st.byDigest[digest])
}

// CausedBy returns the stored events whose causation is id, in stream
// order.
func (st *eventStore) CausedBy(id string) []events.Event {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.eventsOf(st.byCausation[id])
}

// ByID returns the stored event with id.
func (st *eventStore) ByID(id string) (events.Event, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	seq, ok := st.byID[id]
	if !ok {
		return events.Event{}, false
	}
	return st.bySeq[seq].ev, true
}

func (st *eventStore) eventsOf(seqs []uint64) []events.Event {
	out := make([]events.Event, 0, len(seqs))
	for _, s := range seqs {
		if e, ok := st.bySeq[s]; ok {
			out = append(out, e.ev)
		}
	}
	return out
}

// Find returns at most limit stored events that match, newest first
// (limit <= 0: all that match). match must not block: it runs under the
// store's read lock.
func (st *eventStore) Find(match func(events.Event) bool, limit int) []events.Event {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []events.Event
	st.newestFirst(func(e *stored) bool {
		if match == nil || match(e.ev) {
			out = append(out, e.ev)
		}
		return limit <= 0 || len(out) < limit
	})
	return out
}

// find is Find on the store's own records, for the timeline and the live
// stream.
func (st *eventStore) find(match func(*stored) bool, limit int) []*stored {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []*stored
	st.newestFirst(func(e *stored) bool {
		if match(e) {
			out = append(out, e)
		}
		return limit <= 0 || len(out) < limit
	})
	return out
}

// after returns the stored events after sequence seq that match, oldest
// first: what a reconnecting live stream missed (Last-Event-ID).
func (st *eventStore) after(seq uint64, match func(*stored) bool) []*stored {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []*stored
	st.newestFirst(func(e *stored) bool {
		if e.seq <= seq {
			return false
		}
		if match(e) {
			out = append(out, e)
		}
		return true
	})
	slices.Reverse(out)
	return out
}

// lastSeq is the sequence of the newest event read.
func (st *eventStore) lastSeq() uint64 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.last
}

// refs is what describe reads from any event's data: the fields that name
// images and repositories across the event types.
type refs struct {
	Environment string          `json:"environment"`
	Repository  string          `json:"repository"`
	Digest      string          `json:"digest"`
	From        json.RawMessage `json:"from"`
	To          json.RawMessage `json:"to"`
	FromImage   string          `json:"fromImage"`
	ToImage     string          `json:"toImage"`
	Image       string          `json:"image"`
	Target      *targetRefs     `json:"target"`
	Expected    string          `json:"expectedImage"`
	Actual      string          `json:"actualImage"`
}

type targetRefs struct {
	Environment string `json:"environment"`
	Image       string `json:"image"`
}

// describe decodes what the store indexes and filters on. The data is
// read leniently: an event of a type this console does not know still
// shows, filtered by its environment and type.
func describe(seq uint64, ev events.Event) *stored {
	e := &stored{seq: seq, ev: ev, env: events.EnvironmentOf(ev), typ: events.Type(ev.Type()).Short()}
	var r refs
	_ = json.Unmarshal(ev.Data(), &r)
	if e.env == "" {
		e.env = r.Environment
	}
	add := func(list *[]string, v string) {
		if v != "" && !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	add(&e.repos, r.Repository)
	add(&e.digests, r.Digest)
	for _, raw := range []json.RawMessage{r.From, r.To} {
		var ref events.ImageRef
		if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &ref) == nil {
			add(&e.repos, ref.Repository)
			add(&e.digests, ref.Digest)
		}
	}
	// A deployment's digest is in its data; the image a workload left
	// (fromImage, expectedImage) names the repository only, so that an
	// image page shows what replaced it through its own digest.
	for _, img := range []string{r.FromImage, r.Expected} {
		repo, _ := splitImage(img)
		add(&e.repos, repo)
	}
	images := []string{r.ToImage, r.Image, r.Actual}
	if r.Target != nil {
		images = append(images, r.Target.Image)
	}
	for _, img := range images {
		repo, digest := splitImage(img)
		add(&e.repos, repo)
		add(&e.digests, digest)
	}
	return e
}

// splitImage reads registry/repository[:tag][@digest] into the repository
// (without the registry) and the digest.
func splitImage(ref string) (repository, digest string) {
	if ref == "" {
		return "", ""
	}
	ref, digest, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	if first, rest, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		ref = rest
	}
	return ref, digest
}
