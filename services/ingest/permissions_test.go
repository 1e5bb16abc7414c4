package ingest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// withRoles gives cfg's approvers groups and roles: alice is a developer
// (view and approve in dev only), bob releases to production (view,
// approve and operate in dev and prd), carol has no role at all.
func withRoles(cfg *config.Config) *config.Config {
	cfg.Approvers[0].Groups = []string{"developers"}
	cfg.Approvers[1].Groups = []string{"prod-release"}
	cfg.Roles = []config.Role{
		{Group: "developers", Environments: []string{"dev"}, Can: []string{"view", "approve"}},
		{Group: "prod-release", Environments: []string{"dev", "prd"}, Can: []string{"view", "approve", "operate"}},
	}
	return cfg
}

// devRecord is a pending approval into dev.
func devRecord(id string) approval.Record {
	r := pendingRecord(id)
	r.Promotion, r.Environment, r.To.Environment = "ci-to-dev", "dev", "dev"
	return r
}

// decisionOf returns the data of the one decision event stored.
func decisionOf(t *testing.T, a *approvalRig) events.ApprovalDecision {
	t.Helper()
	evs := decisionEvents(t, a.stream)
	if len(evs) != 1 {
		t.Fatalf("%d decision events, want 1", len(evs))
	}
	d, err := events.DataAs[events.ApprovalDecision](evs[0])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDevOnlyApproverGets403OnAPrdDecisionThroughTheAPI(t *testing.T) {
	a := newApprovalRigWith(t, withRoles(approversConfig()))
	a.create(t, pendingRecord("prd-1"))
	a.create(t, devRecord("dev-1"))

	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/prd-1/approve", aliceToken, `{"reason":"lgtm"}`)
	if code != http.StatusForbidden || errorOf(t, raw) != "alice may not approve in prd" {
		t.Fatalf("dev-only approver deciding in prd: %d %s, want 403 alice may not approve in prd", code, raw)
	}
	if rec, _ := a.store.Get(t.Context(), "prd-1"); rec.State != approval.Pending {
		t.Errorf("the refused decision changed the record: %+v", rec)
	}
	if evs := decisionEvents(t, a.stream); len(evs) != 0 {
		t.Errorf("a refused decision announced %d events", len(evs))
	}
	if logs := a.logs.String(); !strings.Contains(logs, "level=INFO msg=\"approval decision refused: no approve role in the environment\"") ||
		!strings.Contains(logs, "approver=alice") {
		t.Errorf("the refusal is not logged at INFO:\n%s", logs)
	}

	// alice sees dev's approvals only; prd's does not exist for her.
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals", aliceToken, "")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, raw)
	}
	if list := listOf(t, raw); len(list) != 1 || list[0].ID != "dev-1" {
		t.Errorf("alice's list %+v, want dev-1 only", list)
	}
	if code, raw, _ := call(t, http.MethodGet, a.url+"/approvals/prd-1", aliceToken, ""); code != http.StatusNotFound {
		t.Errorf("alice reading prd-1: %d %s, want 404", code, raw)
	}
	// carol, with no role, sees nothing and decides nothing.
	if code, raw, _ := call(t, http.MethodGet, a.url+"/approvals", carolToken, ""); code != http.StatusOK || len(listOf(t, raw)) != 0 {
		t.Errorf("carol's list: %d %s, want 200 []", code, raw)
	}
	if code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/dev-1/reject", carolToken, ""); code != http.StatusForbidden || errorOf(t, raw) != "carol may not approve in dev" {
		t.Errorf("carol deciding in dev: %d %s", code, raw)
	}

	// alice may decide in dev; bob sees both and decides in prd.
	if code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/dev-1/approve", aliceToken, ""); code != http.StatusOK {
		t.Fatalf("alice deciding in dev: %d %s", code, raw)
	}
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals", bobToken, "")
	if list := listOf(t, raw); code != http.StatusOK || len(list) != 2 {
		t.Errorf("bob's list: %d %+v, want both", code, list)
	}
	code, raw, _ = call(t, http.MethodPost, a.url+"/approvals/prd-1/approve", bobToken, `{"reason":"tested in tst"}`)
	if code != http.StatusOK || recordOf(t, raw).DecidedBy != "bob" || recordOf(t, raw).Via != events.ViaAPI {
		t.Fatalf("prd approver deciding in prd: %d %s", code, raw)
	}
	var prd events.ApprovalDecision
	for _, e := range decisionEvents(t, a.stream) {
		if d, _ := events.DataAs[events.ApprovalDecision](e); d.ApprovalID == "prd-1" {
			prd = d
		}
	}
	if prd.By != "bob" || prd.Via != events.ViaAPI {
		t.Errorf("prd-1's decision event %+v, want by bob via api", prd)
	}
}

func TestDevOnlyApproverGets403OnAPrdDecisionThroughSlack(t *testing.T) {
	s := newSlackRigWith(t, withRoles(slackConfig()))
	s.create(t, pendingRecord("prd-1"))
	msg := s.approvalMessage(t, "prd-1")

	s.press(t, aliceSlack, "slipway_approve", "prd-1", msg)

	rs := s.waitResponses(t, 1)
	if rs[0].User != aliceSlack || rs[0].ResponseType != "ephemeral" || !strings.Contains(rs[0].Text, "alice, you may not approve in prd, so nothing was decided") {
		t.Errorf("response %+v", rs[0])
	}
	if evs := decisionEvents(t, s.stream); len(evs) != 0 {
		t.Errorf("a refused press announced %d events", len(evs))
	}
	if rec, _ := s.store.Get(t.Context(), "prd-1"); rec.State != approval.Pending {
		t.Errorf("the refused press changed the record: %+v", rec)
	}
	if cur := s.current(t, msg); len(cur.Edits) != 0 {
		t.Errorf("the message changed: %+v", cur.Edits)
	}

	// bob may: the decision is his, through Slack.
	s.press(t, bobSlack, "slipway_approve", "prd-1", msg)
	d := decisionOf(t, s.approvalRig)
	if d.By != "bob" || d.Via != events.ViaSlack {
		t.Errorf("decision %+v, want by bob via slack", d)
	}
}

// TestApproverInTheRulesGroupDecidesWithoutBeingNamed: a rule's approval
// groups let their members decide beside the named approvers; an approver
// in neither is refused as before.
func TestApproverInTheRulesGroupDecidesWithoutBeingNamed(t *testing.T) {
	cfg := approversConfig()
	cfg.Approvers[1].Groups = []string{"release-managers"}
	a := newApprovalRigWith(t, cfg)
	rec := pendingRecord("apr-g", "alice")
	rec.Groups = []string{"release-managers"}
	a.create(t, rec)

	if code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-g/approve", carolToken, ""); code != http.StatusForbidden ||
		errorOf(t, raw) != "carol is not an approver of promotion tst-to-prd" {
		t.Errorf("an approver neither named nor in the groups: %d %s", code, raw)
	}
	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-g/approve", bobToken, "")
	if code != http.StatusOK || recordOf(t, raw).DecidedBy != "bob" {
		t.Fatalf("a member of the rule's group: %d %s", code, raw)
	}
	if d := decisionOf(t, a); d.By != "bob" || d.Via != events.ViaAPI {
		t.Errorf("decision %+v, want by bob via api", d)
	}
}
