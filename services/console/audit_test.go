package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
)

// decided publishes a decision on approval id into env.
func (r *natsRig) decided(t testing.TB, id, env, by, via, reason string, grant bool) events.Event {
	t.Helper()
	typ := events.TypeApprovalGranted
	if !grant {
		typ = events.TypeApprovalRejected
	}
	return r.publish(t, events.Spec{ID: "decision-" + id, Type: typ, Source: "/test", Environment: env, Subject: id,
		Data: events.ApprovalDecision{ApprovalID: id, Promotion: "to-" + env, By: by, Via: via, Reason: reason}})
}

// requested publishes a manual action.
func (r *natsRig) requested(t testing.TB, id, action, actor, via, reason string, target events.ActionTarget) events.Event {
	t.Helper()
	return r.publish(t, events.Spec{ID: id, Type: events.TypeActionRequested, Source: "/test", Environment: target.Environment,
		Subject: action, Data: events.ActionRequested{Action: action, Actor: actor, Via: via, Target: target, Reason: reason,
			RequestedAt: time.Now().UTC()}})
}

// audit asks /api/audit?query as user.
func (r *consoleRig) audit(t *testing.T, user, query string) (entries []auditEntry, older string) {
	t.Helper()
	code, body := r.body(t, user, "/api/audit?"+query)
	if code != http.StatusOK {
		t.Fatalf("GET /api/audit?%s: %d %s", query, code, body)
	}
	var v struct {
		Entries []auditEntry `json:"entries"`
		Older   string       `json:"older"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v.Entries, v.Older
}

func actorsOf(entries []auditEntry) string {
	var s []string
	for _, e := range entries {
		s = append(s, e.Actor+":"+e.Action+"@"+e.Environment)
	}
	return strings.Join(s, ",")
}

// auditRig has, in this order: a grant in tst by rita via the console, a
// rejection in prd by rita via Slack, a rollback in prd by otto via the
// CLI, a redrive in dev by otto via the console; then more events than
// the console keeps in memory, so that the audit must read the stream.
func auditRig(t *testing.T) *consoleRig {
	cfg := testConfig()
	cfg.Console.Events = 5
	r := newConsoleRig(t, cfg)
	r.decided(t, "a1", "tst", "rita", events.ViaConsole, "soaked a day", true)
	r.decided(t, "a2", "prd", "rita", events.ViaSlack, "=HYPERLINK(\"http://evil\")", false)
	r.requested(t, "act-rollback", events.ActionRollback, "otto", events.ViaCLI, "bad release",
		events.ActionTarget{Environment: "prd", Cluster: "prd-1", AppID: "/web"})
	r.requested(t, "act-redrive", events.ActionRedrive, "otto", events.ViaConsole, "fixed the registry",
		events.ActionTarget{Environment: "dev", Sequence: 7, EventID: "ev-7"})
	for i := range 10 {
		r.push(t, "dev", "apps/web", "1", digestOf(100+i))
	}
	eventually(t, "the recent events have dropped the audit events", func() bool {
		_, ok := r.srv.recent.ByID("act-redrive")
		return !ok && r.srv.recent.lastSeq() >= 14
	})
	return r
}

func TestTheAuditListsDecisionsActionsAndRedrivesWithWhoWhenAndVia(t *testing.T) {
	r := auditRig(t)
	got, older := r.audit(t, "ops", "")
	if want := "otto:redrive@dev,otto:rollback@prd,rita:reject@prd,rita:approve@tst"; actorsOf(got) != want || older != "" {
		t.Fatalf("the audit lists %s (older %q), want %s newest first, beyond the recent events", actorsOf(got), older, want)
	}
	if e := got[0]; e.Via != events.ViaConsole || e.Target != "dead letter 7" || e.Reason != "fixed the registry" || e.Time.IsZero() || e.ID != "act-redrive" {
		t.Errorf("the redrive: %+v", e)
	}
	if e := got[1]; e.Via != events.ViaCLI || e.Target != "prd-1:/web" || e.Reason != "bad release" {
		t.Errorf("the rollback: %+v", e)
	}
	if e := got[3]; e.Via != events.ViaConsole || e.Target != "approval a1 (to-tst)" || e.Reason != "soaked a day" || e.Type != "approval.granted" {
		t.Errorf("the grant: %+v", e)
	}

	for query, want := range map[string]string{
		"env=prd":                  "otto:rollback@prd,rita:reject@prd",
		"actor=RITA":               "rita:reject@prd,rita:approve@tst",
		"action=redrive":           "otto:redrive@dev",
		"action=approval.rejected": "rita:reject@prd",
		"since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339): "",
		"since=1h": "otto:redrive@dev,otto:rollback@prd,rita:reject@prd,rita:approve@tst",
	} {
		if got, _ := r.audit(t, "ops", query); actorsOf(got) != want {
			t.Errorf("?%s lists %q, want %q", query, actorsOf(got), want)
		}
	}

	// Two per page: the second page goes on where the first stopped.
	page, older := r.audit(t, "ops", "limit=2")
	if actorsOf(page) != "otto:redrive@dev,otto:rollback@prd" || !strings.HasPrefix(older, "/api/audit?") {
		t.Fatalf("first page %s, older %q", actorsOf(page), older)
	}
	page, older = r.audit(t, "ops", strings.TrimPrefix(older, "/api/audit?"))
	if actorsOf(page) != "rita:reject@prd,rita:approve@tst" || older != "" {
		t.Fatalf("second page %s, older %q", actorsOf(page), older)
	}

	code, html := r.body(t, "ops", "/audit")
	if code != http.StatusOK {
		t.Fatalf("GET /audit: %d", code)
	}
	for _, want := range []string{"otto", "rita", "redrive", "dead letter 7", ">Via<", "slack", "cli", "bad release", "prd-1:/web"} {
		if !strings.Contains(html, want) {
			t.Errorf("the audit page lacks %q", want)
		}
	}
}

func TestADevOnlyUserSeesNoPrdRowOfTheAuditInHTMLJSONOrCSV(t *testing.T) {
	r := auditRig(t)
	if got, _ := r.audit(t, "dev", ""); actorsOf(got) != "otto:redrive@dev" {
		t.Errorf("a dev-only user's audit: %s, want the dev redrive only", actorsOf(got))
	}
	if got, _ := r.audit(t, "dev", "env=prd"); len(got) != 0 {
		t.Errorf("a dev-only user asking for prd gets %s", actorsOf(got))
	}
	_, html := r.body(t, "dev", "/audit")
	if !strings.Contains(html, "fixed the registry") || strings.Contains(html, "bad release") || strings.Contains(html, "prd-1") || strings.Contains(html, "HYPERLINK") {
		t.Errorf("a dev-only user's audit page shows more or less than the dev redrive:\n%s", html)
	}
	res := r.get(t, "dev", "/audit?format=csv")
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil || res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %s %s %v", res.Status, res.Header.Get("Content-Type"), err)
	}
	if len(rows) != 2 || rows[1][2] != "dev" || rows[1][3] != "otto" || rows[1][5] != "redrive" {
		t.Errorf("a dev-only user's CSV: %q, want the header and the dev redrive", rows)
	}

	// Everyone's CSV: the rejection's reason cannot become a formula.
	res = r.get(t, "ops", "/audit?format=csv&env=prd")
	rows, err = csv.NewReader(res.Body).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("prd CSV: %q %v", rows, err)
	}
	if reason := rows[2][7]; reason != `'=HYPERLINK("http://evil")` {
		t.Errorf("a reason starting with = is exported as %q", reason)
	}
}
