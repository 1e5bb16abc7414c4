package promoter_test

import (
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// TestGrantedApprovalIsNamedInImagePromoted: a promotion its rule made wait
// for an approval names that approval and who granted it, so the inventory
// can tell an auditor who let the image into the environment; one that
// needed none names nobody.
func TestGrantedApprovalIsNamedInImagePromoted(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, approval: { required: true, approvers: [rm] } }`, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	req := e.seen.Wait(t, events.TypeApprovalRequested, 1)
	ar, _ := events.DataAs[events.ApprovalRequested](req[0])

	store, err := approval.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.Decide(t.Context(), ar.ApprovalID, "rm", true, "ship it", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := approval.DecisionEvent(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	got := e.seen.Wait(t, events.TypeImagePromoted, 1)
	d, err := events.DataAs[events.ImagePromoted](got[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.ApprovalID != ar.ApprovalID || d.ApprovedBy != "rm" {
		t.Errorf("image.promoted names approval %q by %q, want %q by rm", d.ApprovalID, d.ApprovedBy, ar.ApprovalID)
	}
}

func TestPromotionWithoutApprovalNamesNoApprover(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	got := e.seen.Wait(t, events.TypeImagePromoted, 1)
	d, err := events.DataAs[events.ImagePromoted](got[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.ApprovalID != "" || d.ApprovedBy != "" {
		t.Errorf("image.promoted names approval %q by %q, want none", d.ApprovalID, d.ApprovedBy)
	}
}
