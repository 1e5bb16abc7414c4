package promoter_test

import (
	"errors"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// TestDecidedApprovalsLeaveAfterRetention: with approvals.retention of a
// second, the running promoter removes a decided approval from the bucket
// while a pending one stays; a decision whose event was never stored (its
// decider gone before publishing) is announced first, then removed.
func TestDecidedApprovalsLeaveAfterRetention(t *testing.T) {
	e := newEnv(t, "registry.dev.example", "registry.tst.example", rule[:len(rule)-2]+`, approval: { required: true, approvers: [rm] } }`, "")
	e.cfg.Approvals.Retention = time.Second
	e.start(promoter.New())
	store, err := approval.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	rec := func(id string) approval.Record {
		digest := "sha256:" + events.ID(id)[:8] + "00000000000000000000000000000000000000000000000000000000"
		return approval.Record{ID: id, Promotion: "dev-to-tst",
			From:        events.ImageRef{Environment: "dev", Registry: e.dev, Repository: "apps/web", Tag: "1.0.0", Digest: digest},
			To:          events.ImageRef{Environment: "tst", Registry: e.tst, Repository: "apps/web", Tag: "1.0.0", Digest: digest},
			RequestedAt: now.Add(-time.Hour), ExpiresAt: now.Add(72 * time.Hour), State: approval.Pending,
			CauseID: events.ID("request", id), Environment: "tst"}
	}
	for _, id := range []string{"pending", "decided", "unannounced"} {
		if _, err := store.Create(t.Context(), rec(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Decide(t.Context(), "decided", "rm", false, "not now", now); err != nil {
		t.Fatal(err)
	}
	if err := store.Announced(t.Context(), "decided"); err != nil {
		t.Fatal(err)
	}
	// Decided ten minutes ago; its event never made it to the stream.
	if _, err := store.Decide(t.Context(), "unannounced", "rm", false, "no", now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}

	gone := func(id string) bool {
		_, err := store.Get(t.Context(), id)
		return errors.Is(err, approval.ErrNotFound)
	}
	testkit.WaitFor(t, "the decided approvals to leave the bucket", func() bool { return gone("decided") && gone("unannounced") })
	if got, err := store.Get(t.Context(), "pending"); err != nil || got.State != approval.Pending {
		t.Fatalf("the pending approval: %+v %v, want it kept", got, err)
	}
	rejected := e.seen.Wait(t, events.TypeApprovalRejected, 1)
	if len(rejected) != 1 || rejected[0].ID() != events.CausedID("unannounced", events.TypeApprovalRejected) {
		t.Fatalf("rejections announced: %v, want the unannounced one's", rejected)
	}
}
