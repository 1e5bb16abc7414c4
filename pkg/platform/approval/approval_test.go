package approval_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func open(t *testing.T) *approval.Store {
	t.Helper()
	_, js := testkit.NATS(t).Connect(t)
	s, err := approval.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Open is create-or-update: a second service opening it is fine, and
	// Bind finds it.
	if _, err := approval.Open(t.Context(), js, 1); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := approval.Bind(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	return s
}

func record(id string, approvers ...string) approval.Record {
	return approval.Record{
		ID:        id,
		Promotion: "tst-to-prd",
		From:      events.ImageRef{Environment: "tst", Registry: "registry.tst.example", Repository: "payments/api", Tag: "1.4.2", Digest: "sha256:" + fmt.Sprintf("%064d", 1)},
		To:        events.ImageRef{Environment: "prd", Registry: "registry.prd.example", Repository: "payments/api", Tag: "1.4.2", Digest: "sha256:" + fmt.Sprintf("%064d", 1)},
		Approvers: approvers, RequestedAt: t0, ExpiresAt: t0.Add(72 * time.Hour),
		State: approval.Pending, CauseID: "cause-" + id, Environment: "prd",
	}
}

func create(t *testing.T, s *approval.Store, r approval.Record) {
	t.Helper()
	if created, err := s.Create(t.Context(), r); err != nil || !created {
		t.Fatalf("create %s: %t %v", r.ID, created, err)
	}
}

func TestCreateGetList(t *testing.T) {
	s := open(t)
	a := record("a")
	create(t, s, a)
	// Idempotent on the id: the first record stays.
	again := a
	again.Promotion = "other"
	if created, err := s.Create(t.Context(), again); err != nil || created {
		t.Fatalf("second create: %t %v, want false nil", created, err)
	}
	got, err := s.Get(t.Context(), "a")
	if err != nil || got.Promotion != "tst-to-prd" || got.State != approval.Pending || !got.RequestedAt.Equal(t0) {
		t.Fatalf("get: %+v %v", got, err)
	}

	b := record("b")
	b.RequestedAt = t0.Add(time.Hour)
	b.State = "" // stored as pending
	create(t, s, b)
	list, err := s.List(t.Context())
	if err != nil || len(list) != 2 || list[0].ID != "b" || list[1].ID != "a" {
		t.Fatalf("list: %v %v, want b then a (newest first)", list, err)
	}
	if list[0].State != approval.Pending {
		t.Errorf("empty state stored as %q", list[0].State)
	}

	for _, id := range []string{"nope", "no/such key", ""} {
		if _, err := s.Get(t.Context(), id); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("get %q: %v, want ErrNotFound", id, err)
		}
		if _, err := s.Decide(t.Context(), id, "alice", true, "", t0); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("decide %q: %v, want ErrNotFound", id, err)
		}
	}
}

func TestDecide(t *testing.T) {
	s := open(t)
	create(t, s, record("r", "alice", "bob"))
	now := t0.Add(time.Hour)

	if _, err := s.Decide(t.Context(), "r", "mallory", true, "", now); !errors.Is(err, approval.ErrNotAllowed) {
		t.Fatalf("not an approver of the promotion: %v, want ErrNotAllowed", err)
	}
	r, err := s.Decide(t.Context(), "r", "alice", true, "looks good", now)
	if err != nil || r.Repeat {
		t.Fatalf("grant: %v (repeat %t)", err, r.Repeat)
	}
	if r.State != approval.Granted || r.DecidedBy != "alice" || r.Reason != "looks good" || !r.DecidedAt.Equal(now) {
		t.Fatalf("decided record %+v", r)
	}
	stored, _ := s.Get(t.Context(), "r")
	if stored.State != approval.Granted || stored.DecidedBy != "alice" || stored.Repeat {
		t.Fatalf("stored %+v", stored)
	}

	// The same decision by the same approver, later, past expiry, with
	// another reason, before its event is stored: the first decision,
	// flagged as a repeat (to publish its event), no error.
	if !stored.EventPending {
		t.Fatalf("a new decision is stored without EventPending: %+v", stored)
	}
	r2, err := s.Decide(t.Context(), "r", "alice", true, "again", t0.Add(100*time.Hour))
	if err != nil || !r2.Repeat || r2.Reason != "looks good" || !r2.DecidedAt.Equal(now) {
		t.Fatalf("repeat: %+v %v", r2, err)
	}
	// Once the event is stored, the same repeat is ErrDecided, and the
	// record keeps its first reason.
	if err := s.Announced(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	r3, err := s.Decide(t.Context(), "r", "alice", true, "again", now.Add(time.Minute))
	if !errors.Is(err, approval.ErrDecided) || r3.Repeat || r3.DecidedBy != "alice" || !r3.DecidedAt.Equal(now) {
		t.Fatalf("repeat after the event was stored: %+v %v, want ErrDecided", r3, err)
	}
	if stored, _ := s.Get(t.Context(), "r"); stored.Reason != "looks good" || stored.EventPending {
		t.Fatalf("stored after the repeat %+v", stored)
	}
	// Anything else is ErrDecided, with the record.
	for _, c := range []struct {
		who   string
		grant bool
	}{{"alice", false}, {"bob", true}, {"bob", false}} {
		r, err := s.Decide(t.Context(), "r", c.who, c.grant, "", now)
		if !errors.Is(err, approval.ErrDecided) || r.DecidedBy != "alice" || r.State != approval.Granted || r.Repeat {
			t.Errorf("%s grant=%t: %+v %v, want ErrDecided with alice's record", c.who, c.grant, r, err)
		}
	}
	// A non-approver learns nothing more than ErrNotAllowed.
	if _, err := s.Decide(t.Context(), "r", "mallory", true, "", now); !errors.Is(err, approval.ErrNotAllowed) {
		t.Errorf("non-approver on a decided record: %v", err)
	}
}

func TestDecideReject(t *testing.T) {
	s := open(t)
	create(t, s, record("r")) // any approver
	r, err := s.Decide(t.Context(), "r", "zoe", false, "load test open", t0)
	if err != nil || r.State != approval.Rejected || r.DecidedBy != "zoe" {
		t.Fatalf("reject: %+v %v", r, err)
	}
	if r, err := s.Decide(t.Context(), "r", "zoe", false, "", t0); err != nil || !r.Repeat {
		t.Fatalf("repeated reject: %+v %v", r, err)
	}
	if _, err := s.Decide(t.Context(), "r", "zoe", true, "", t0); !errors.Is(err, approval.ErrDecided) {
		t.Fatalf("grant after reject: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	s := open(t)
	r := record("r")
	create(t, s, r)
	if st := r.StateAt(r.ExpiresAt.Add(-time.Nanosecond)); st != approval.Pending {
		t.Errorf("before expiry: %s", st)
	}
	if st := r.StateAt(r.ExpiresAt); st != approval.Expired {
		t.Errorf("at expiry: %s", st)
	}
	got, err := s.Decide(t.Context(), "r", "alice", true, "", r.ExpiresAt)
	if !errors.Is(err, approval.ErrExpired) || got.ID != "r" {
		t.Fatalf("decide at expiry: %v, want ErrExpired", err)
	}
	if stored, _ := s.Get(t.Context(), "r"); stored.State != approval.Pending {
		t.Errorf("an expired decision attempt wrote %s", stored.State)
	}

	never := record("never")
	never.ExpiresAt = time.Time{}
	create(t, s, never)
	if _, err := s.Decide(t.Context(), "never", "alice", true, "", t0.Add(10000*time.Hour)); err != nil {
		t.Fatalf("no expiry: %v", err)
	}

	stored := record("stored-expired")
	stored.State = approval.Expired
	create(t, s, stored)
	if _, err := s.Decide(t.Context(), "stored-expired", "alice", true, "", t0); !errors.Is(err, approval.ErrExpired) {
		t.Fatalf("stored as expired: %v", err)
	}
}

// TestConcurrentDeciders: approvers deciding at the same moment; exactly
// one wins, everyone else gets ErrDecided naming the winner.
func TestConcurrentDeciders(t *testing.T) {
	s := open(t)
	const n = 8
	for round := range 5 {
		id := fmt.Sprintf("r%d", round)
		create(t, s, record(id))
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]approval.Record, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.Decide(t.Context(), id, fmt.Sprintf("approver-%d", i), i%2 == 0, "", t0)
			})
		}
		close(start)
		wg.Wait()
		winner := ""
		for i := range n {
			switch {
			case errs[i] == nil:
				if winner != "" {
					t.Fatalf("%s: two winners, %s and approver-%d", id, winner, i)
				}
				winner = results[i].DecidedBy
			case !errors.Is(errs[i], approval.ErrDecided):
				t.Fatalf("%s: approver-%d: %v", id, i, errs[i])
			}
		}
		if winner == "" {
			t.Fatalf("%s: nobody won", id)
		}
		for i := range n {
			if errs[i] != nil && results[i].DecidedBy != winner {
				t.Errorf("%s: approver-%d was told %s decided, the winner is %s", id, i, results[i].DecidedBy, winner)
			}
		}
		if stored, _ := s.Get(t.Context(), id); stored.DecidedBy != winner {
			t.Errorf("%s: stored decision by %s, winner %s", id, stored.DecidedBy, winner)
		}
	}
}

func TestDecisionEvent(t *testing.T) {
	s := open(t)
	create(t, s, record("r"))
	if _, err := approval.DecisionEvent(t.Context(), record("r")); err == nil {
		t.Fatal("a pending record has no decision event")
	}
	r, err := s.Decide(t.Context(), "r", "alice", true, "ok", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e, err := approval.DecisionEvent(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != events.CausedID("r", events.TypeApprovalGranted) || e.Type() != string(events.TypeApprovalGranted) {
		t.Errorf("id %s type %s", e.ID(), e.Type())
	}
	if events.CausationOf(e) != "cause-r" || events.EnvironmentOf(e) != "prd" || e.Subject() != r.To.String() || !e.Time().Equal(r.DecidedAt) {
		t.Errorf("causation %s env %s subject %s time %s", events.CausationOf(e), events.EnvironmentOf(e), e.Subject(), e.Time())
	}
	if subj, _ := events.SubjectOf(e); subj != "slipway.approval.granted.prd" {
		t.Errorf("NATS subject %s", subj)
	}
	d, err := events.DataAs[events.ApprovalDecision](e)
	if err != nil || d != (events.ApprovalDecision{ApprovalID: "r", Promotion: "tst-to-prd", By: "alice", Reason: "ok"}) {
		t.Errorf("data %+v %v", d, err)
	}
	// The repeat gives the same event, byte for byte.
	again, err := s.Decide(t.Context(), "r", "alice", true, "", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := approval.DecisionEvent(t.Context(), again)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := e.MarshalJSON()
	b2, _ := e2.MarshalJSON()
	if string(b1) != string(b2) {
		t.Errorf("re-published event differs:\n%s\n%s", b1, b2)
	}

	create(t, s, record("x"))
	r, _ = s.Decide(t.Context(), "x", "bob", false, "no", t0)
	if e, err := approval.DecisionEvent(t.Context(), r); err != nil || e.Type() != string(events.TypeApprovalRejected) || e.ID() != events.CausedID("x", events.TypeApprovalRejected) {
		t.Errorf("reject event %v %v", e, err)
	}
}

// TestSweepRemovesOnlyWhatRetentionAllows: decided records leave the
// bucket retention after their decision, expired ones retention after
// their expiry; pending ones and decisions whose event is not stored stay.
func TestSweepRemovesOnlyWhatRetentionAllows(t *testing.T) {
	_, js := testkit.NATS(t).Connect(t)
	s, err := approval.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const retention = 24 * time.Hour
	decidedAt := t0.Add(time.Hour)
	decide := func(id string, grant bool, announce bool) {
		t.Helper()
		create(t, s, record(id))
		if _, err := s.Decide(t.Context(), id, "alice", grant, "", decidedAt); err != nil {
			t.Fatal(err)
		}
		if announce {
			if err := s.Announced(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
	}
	decide("granted", true, true)
	decide("rejected", false, true)
	decide("unannounced", true, false)
	create(t, s, record("pending")) // expires at t0+72h
	never := record("never")
	never.ExpiresAt = time.Time{}
	create(t, s, never)

	sweep := func(now time.Time) (int, []approval.Record) {
		t.Helper()
		n, unannounced, err := s.Sweep(t.Context(), now, retention)
		if err != nil {
			t.Fatal(err)
		}
		return n, unannounced
	}
	present := func(want ...string) {
		t.Helper()
		list, err := s.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.ID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("records %v, want %v", got, want)
		}
	}

	// Just before the retention ends: nothing goes.
	if n, un := sweep(decidedAt.Add(retention - time.Second)); n != 0 || len(un) != 1 || un[0].ID != "unannounced" {
		t.Fatalf("early sweep: removed %d, unannounced %v", n, un)
	}
	present("granted", "rejected", "unannounced", "pending", "never")

	// At the end of the retention the announced decisions go, completely.
	if n, _ := sweep(decidedAt.Add(retention)); n != 2 {
		t.Fatalf("removed %d, want 2", n)
	}
	present("unannounced", "pending", "never")
	for _, id := range []string{"granted", "rejected"} {
		if _, err := s.Get(t.Context(), id); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("get %s after the sweep: %v, want ErrNotFound", id, err)
		}
	}
	// A record created anew under a removed id is a new approval.
	again := record("granted")
	again.RequestedAt, again.ExpiresAt = t0.Add(200*time.Hour), t0.Add(272*time.Hour)
	create(t, s, again)

	// Past the pending one's expiry plus the retention, it goes too; the
	// one without expiry and the unannounced decision stay for ever.
	if n, _ := sweep(record("pending").ExpiresAt.Add(retention)); n != 1 {
		t.Fatalf("removed %d, want the expired one", n)
	}
	present("unannounced", "never", "granted")
	if err := s.Announced(t.Context(), "unannounced"); err != nil {
		t.Fatal(err)
	}
	if n, un := sweep(decidedAt.Add(retention)); n != 1 || len(un) != 0 {
		t.Fatalf("after it was announced: removed %d, unannounced %v", n, un)
	}
	present("never", "granted")
	// Nothing is left of the removed records: no revisions, no delete
	// markers; one message for each of the two records.
	kv, err := js.KeyValue(t.Context(), approval.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(t.Context()); err != nil || st.Values() != 2 {
		t.Fatalf("bucket holds %d messages (%v), want 2", st.Values(), err)
	}
}

// TestAnnounceStoresTheEventBeforeMarkingTheRecord: while the event cannot
// be stored the decision stays EventPending (the decider's repeat is a
// Repeat); once it can, Announce stores the decision's event under its
// deterministic id and marks the record, and a repeat is then ErrDecided.
func TestAnnounceStoresTheEventBeforeMarkingTheRecord(t *testing.T) {
	_, js := testkit.NATS(t).Connect(t)
	s, err := approval.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	create(t, s, record("a", "alice"))
	now := t0.Add(time.Hour)
	r, err := s.Decide(t.Context(), "a", "alice", true, "ok", now)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, "")

	// No stream yet: nothing can store the event.
	if _, _, err := s.Announce(t.Context(), pub, r); !errors.Is(err, approval.ErrEventNotStored) {
		t.Fatalf("Announce without a stream: %v, want ErrEventNotStored", err)
	}
	again, err := s.Decide(t.Context(), "a", "alice", true, "ok", now)
	if err != nil || !again.Repeat || !again.EventPending {
		t.Fatalf("repeat after an unstored event: %+v %v, want a Repeat, EventPending", again, err)
	}

	stream, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got, e, err := s.Announce(t.Context(), pub, again)
	if err != nil || got.EventPending {
		t.Fatalf("Announce: %+v %v", got, err)
	}
	if want := events.CausedID("a", events.TypeApprovalGranted); e.ID() != want {
		t.Errorf("event id %s, want %s", e.ID(), want)
	}
	msg, err := stream.GetLastMsgForSubject(t.Context(), "slipway.approval.granted.prd")
	if err != nil || msg.Header.Get("Nats-Msg-Id") != e.ID() {
		t.Fatalf("stored event: %v %v", msg, err)
	}
	if rec, err := s.Get(t.Context(), "a"); err != nil || rec.EventPending {
		t.Errorf("record after Announce: %+v %v, want it marked", rec, err)
	}
	if _, err := s.Decide(t.Context(), "a", "alice", true, "ok", now); !errors.Is(err, approval.ErrDecided) {
		t.Errorf("repeat after Announce: %v, want ErrDecided", err)
	}

	// A pending record has no decision to announce.
	create(t, s, record("b"))
	if _, _, err := s.Announce(t.Context(), pub, record("b")); !errors.Is(err, approval.ErrNoEvent) {
		t.Errorf("Announce of a pending record: %v, want ErrNoEvent", err)
	}
}

// A rule's approval groups let their members decide without being named;
// anyone else is refused, named approvers still decide, and the decision
// event says through which interface it came.
func TestDecideAsAMemberOfTheRulesGroups(t *testing.T) {
	s := open(t)
	r := record("g", "alice")
	r.Groups = []string{"release-managers"}
	create(t, s, r)
	now := t0.Add(time.Hour)

	outsider := access.Identity{Name: "mallory", Groups: []string{"developers"}, Via: events.ViaAPI}
	if _, err := s.DecideAs(t.Context(), "g", outsider, true, "", now); !errors.Is(err, approval.ErrNotAllowed) {
		t.Fatalf("a member of another group: %v, want ErrNotAllowed", err)
	}
	member := access.Identity{Name: "dana", Groups: []string{"developers", "release-managers"}, Via: events.ViaSlack}
	got, err := s.DecideAs(t.Context(), "g", member, true, "ship it", now)
	if err != nil || got.State != approval.Granted || got.DecidedBy != "dana" || got.Via != events.ViaSlack {
		t.Fatalf("a member of the rule's group: %+v %v", got, err)
	}
	e, err := approval.DecisionEvent(t.Context(), got)
	if err != nil {
		t.Fatal(err)
	}
	d, err := events.DataAs[events.ApprovalDecision](e)
	if err != nil || d.By != "dana" || d.Via != events.ViaSlack {
		t.Errorf("decision event data %+v %v, want by dana via slack", d, err)
	}

	// A named approver needs no group.
	create(t, s, func() approval.Record { r := record("n", "alice"); r.Groups = []string{"release-managers"}; return r }())
	if _, err := s.DecideAs(t.Context(), "n", access.Identity{Name: "alice", Via: events.ViaAPI}, false, "", now); err != nil {
		t.Errorf("a named approver outside the groups: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		name              string
		approvers, groups []string
		who               access.Identity
		want              bool
	}{
		{"anyone when neither is set", nil, nil, access.Identity{Name: "x"}, true},
		{"named", []string{"alice"}, nil, access.Identity{Name: "alice"}, true},
		{"not named", []string{"alice"}, nil, access.Identity{Name: "bob", Groups: []string{"alice"}}, false},
		{"in a group", nil, []string{"rm"}, access.Identity{Name: "bob", Groups: []string{"dev", "rm"}}, true},
		{"in no group", nil, []string{"rm"}, access.Identity{Name: "rm", Groups: []string{"dev"}}, false},
		{"named beside groups", []string{"alice"}, []string{"rm"}, access.Identity{Name: "alice"}, true},
	} {
		r := approval.Record{Approvers: tc.approvers, Groups: tc.groups}
		if got := r.Allowed(tc.who); got != tc.want {
			t.Errorf("%s: Allowed(%+v) = %t, want %t", tc.name, tc.who, got, tc.want)
		}
	}
}
