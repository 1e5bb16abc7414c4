package promoter_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// TestApprovalRecordCarriesTheRulesGroups: the approval the promoter
// records names the rule's approval groups, so that a member of one may
// decide it without being named, and nobody else may.
func TestApprovalRecordCarriesTheRulesGroups(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, approval: { required: true, approvers: [rm], groups: [release-managers] } }`, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	req := e.seen.Wait(t, events.TypeApprovalRequested, 1)
	ar, _ := events.DataAs[events.ApprovalRequested](req[0])

	store, err := approval.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.Get(t.Context(), ar.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Groups, []string{"release-managers"}) || !slices.Equal(rec.Approvers, []string{"rm"}) {
		t.Fatalf("record's approvers %v and groups %v, want [rm] and [release-managers]", rec.Approvers, rec.Groups)
	}
	developer := access.Identity{Name: "dana", Groups: []string{"developers"}, Via: events.ViaAPI}
	if _, err := store.DecideAs(t.Context(), rec.ID, developer, true, "", time.Now()); !errors.Is(err, approval.ErrNotAllowed) {
		t.Errorf("a developer decided: %v", err)
	}
	member := access.Identity{Name: "mo", Groups: []string{"release-managers"}, Via: events.ViaAPI}
	if got, err := store.DecideAs(t.Context(), rec.ID, member, true, "", time.Now()); err != nil || got.DecidedBy != "mo" {
		t.Errorf("a release manager could not decide: %+v %v", got, err)
	}
}
