package console

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
)

func startStore(t *testing.T, r *natsRig, size int) *eventStore {
	t.Helper()
	st := newEventStore(size, slog.New(slog.DiscardHandler))
	if err := st.start(t.Context(), r.js, "SLIPWAY"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.stop)
	return st
}

func ids(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID())
	}
	return out
}

func TestRecentEventsStartFromTheLastOnesAndCatchUp(t *testing.T) {
	r := newNATSRig(t)
	var pushed []events.Event
	for i := range 8 {
		pushed = append(pushed, r.push(t, "dev", "apps/web", "1.0."+string(rune('0'+i)), digestOf(i)))
	}
	st := startStore(t, r, 5)
	eventually(t, "the store catches up", func() bool { return st.caughtUp(t.Context()) == nil })

	got := ids(st.Find(nil, 0))
	var want []string
	for i := 7; i >= 3; i-- {
		want = append(want, pushed[i].ID())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Find = %v, want the last 5 newest first %v", got, want)
	}
	if got := st.ByDigest(digestOf(1)); len(got) != 0 {
		t.Fatalf("an event older than the window is kept: %v", ids(got))
	}
	if got := ids(st.ByDigest(digestOf(6))); !slices.Equal(got, []string{pushed[6].ID()}) {
		t.Fatalf("ByDigest = %v, want %s", got, pushed[6].ID())
	}
	if got := ids(st.Find(func(e events.Event) bool { return e.ID() != pushed[7].ID() }, 2)); !slices.Equal(got, want[1:3]) {
		t.Fatalf("Find with a match and a limit = %v, want %v", got, want[1:3])
	}
}

func TestRecentEventsStayBoundedAndIndexesForgetWhatLeaves(t *testing.T) {
	r := newNATSRig(t)
	st := startStore(t, r, 10)
	for i := range 50 {
		r.push(t, "dev", "apps/web", fmt.Sprint(i), digestOf(i%20)) // digests come back: index lists grow and shrink
	}
	eventually(t, "50 events read", func() bool { return st.lastSeq() == 50 })
	st.mu.RLock()
	defer st.mu.RUnlock()
	if len(st.ring) != 10 || len(st.bySeq) != 10 || len(st.byID) != 10 {
		t.Fatalf("ring %d, bySeq %d, byID %d entries; want 10 each", len(st.ring), len(st.bySeq), len(st.byID))
	}
	indexed := 0
	for d, seqs := range st.byDigest {
		for _, s := range seqs {
			if _, ok := st.bySeq[s]; !ok {
				t.Fatalf("digest %s still indexes sequence %d, which left the store", d, s)
			}
		}
		indexed += len(seqs)
	}
	if indexed != 10 {
		t.Fatalf("%d digest index entries, want 10", indexed)
	}
}

func TestRecentEventsIndexPromotionsAndDeploymentsByDigestAndCausation(t *testing.T) {
	r := newNATSRig(t)
	st := startStore(t, r, 100)
	d := digestOf(42)
	push := r.push(t, "dev", "apps/web", "1.2.3", d)
	from := events.ImageRef{Environment: "dev", Registry: "registry.dev", Repository: "apps/web", Tag: "1.2.3", Digest: d}
	to := events.ImageRef{Environment: "tst", Registry: "registry.tst", Repository: "apps/web", Tag: "1.2.3", Digest: d}
	promoted := r.publish(t, events.Spec{ID: "promoted-1", Type: events.TypeImagePromoted, Source: "/test", Environment: "tst",
		Subject: to.String(), CausationID: push.ID(), Data: events.ImagePromoted{Promotion: "dev-to-tst", From: from, To: to}})
	deployed := r.publish(t, events.Spec{ID: "deployed-1", Type: events.TypeDeploymentSucceeded, Source: "/test", Environment: "tst",
		Subject: "c1:/web", CausationID: promoted.ID(), Data: events.Deployment{Cluster: "c1", Environment: "tst", AppID: "/web",
			Platform: "marathon", FromImage: "registry.tst/apps/web:1.2.2", ToImage: to.String(), Digest: d}})
	r.push(t, "dev", "apps/other", "1", digestOf(7))

	eventually(t, "4 events read", func() bool { return st.lastSeq() == 4 })
	if got, want := ids(st.ByDigest(d)), []string{push.ID(), promoted.ID(), deployed.ID()}; !slices.Equal(got, want) {
		t.Fatalf("ByDigest = %v, want %v in stream order", got, want)
	}
	if got := ids(st.CausedBy(push.ID())); !slices.Equal(got, []string{promoted.ID()}) {
		t.Fatalf("CausedBy(push) = %v", got)
	}
	if e, ok := st.ByID(deployed.ID()); !ok || e.Type() != string(events.TypeDeploymentSucceeded) {
		t.Fatalf("ByID(deployed) = %v, %v", e.Type(), ok)
	}
}

func TestRecentEventsFollowTheStreamAcrossANATSRestart(t *testing.T) {
	r := newNATSRig(t)
	st := startStore(t, r, 100)
	r.push(t, "dev", "apps/web", "1", digestOf(1))
	eventually(t, "the first event read", func() bool { return st.lastSeq() == 1 })

	r.nats.Restart(t)
	r.push(t, "dev", "apps/web", "2", digestOf(2))
	eventually(t, "the event published after the restart read", func() bool { return len(st.ByDigest(digestOf(2))) == 1 })
	if n := len(st.Find(nil, 0)); n != 2 {
		t.Fatalf("%d events after the restart, want 2 (none twice)", n)
	}
}
