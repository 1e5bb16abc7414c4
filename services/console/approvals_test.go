package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// csrf is the session's CSRF token, as a page gives it.
func (r *consoleRig) csrf(t *testing.T, user string) string {
	t.Helper()
	_, page := r.body(t, user, "/timeline")
	_, rest, ok := strings.Cut(page, `name="csrf-token" content="`)
	tok, _, _ := strings.Cut(rest, `"`)
	if !ok || tok == "" {
		t.Fatal("no CSRF token on the page")
	}
	return tok
}

// pending creates a pending approval of a promotion into env.
func (r *consoleRig) pending(t *testing.T, id, env string) {
	t.Helper()
	st, err := approval.Open(t.Context(), r.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(t.Context(), approval.Record{ID: id, Promotion: "to-" + env, Environment: env, RequestedAt: time.Now().UTC(),
		From: events.ImageRef{Environment: "dev", Registry: "registry.dev", Repository: "apps/web", Tag: "1", Digest: digestOf(1)},
		To:   events.ImageRef{Environment: env, Registry: "registry." + env, Repository: "apps/web", Tag: "1", Digest: digestOf(1)}}); err != nil {
		t.Fatal(err)
	}
}

// post sends a form as user with the session's CSRF token (unless the
// form has its own csrf field) and returns the response without following
// a redirect.
func (r *consoleRig) post(t *testing.T, user, path string, form url.Values) *http.Response {
	t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", r.csrf(t, user))
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.http.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Test-User", user)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestApprovingThreeAtOnceDecidesEachViaTheConsole(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	for _, id := range []string{"a1", "a2", "a3"} {
		r.pending(t, id, "tst")
	}
	rec := testkit.Record(t, r.js, "slipway.approval.>")
	res := r.post(t, "release", "/approvals/decide", url.Values{"ids[]": {"a1", "a2", "a3"}, "decision": {"approve"}, "reason": {"soaked"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("bulk approve: %s", res.Status)
	}
	loc := res.Header.Get("Location")
	for _, id := range []string{"a1", "a2", "a3"} {
		if !strings.Contains(loc, id+"%3A+granted") {
			t.Fatalf("the result of %s is missing from %s", id, loc)
		}
	}
	got := rec.Wait(t, events.TypeApprovalGranted, 3)
	for _, e := range got {
		d, err := events.DataAs[events.ApprovalDecision](e)
		if err != nil || d.Via != events.ViaConsole || d.By != "rita" || d.Reason != "soaked" {
			t.Fatalf("decision event %+v (%v), want by rita via console", d, err)
		}
	}
	code, page := r.body(t, "release", "/approvals")
	if code != http.StatusOK || !strings.Contains(page, "rita") || !strings.Contains(page, "console") {
		t.Fatalf("the decided approvals do not show who and via (%d)", code)
	}
}

func TestADevOnlyUserGets403OnAPrdDecisionAndNothingIsWritten(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	// An id no page has by chance (a random CSRF token may hold "p1").
	const id = "prd-only-approval"
	r.pending(t, id, "prd")
	res := r.post(t, "dev", "/approvals/decide", url.Values{"ids[]": {id}, "decision": {"approve"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a dev-only user's prd decision: %s, want 403", res.Status)
	}
	st, _ := approval.Open(t.Context(), r.js, 1)
	if rec, err := st.Get(t.Context(), id); err != nil || rec.State != approval.Pending {
		t.Fatalf("the approval is %s (%v) after a refused decision, want pending", rec.State, err)
	}
	if _, page := r.body(t, "dev", "/approvals"); strings.Contains(page, id) {
		t.Fatal("a dev-only user sees the prd approval in the queue")
	}
}

func TestAPostWithoutTheCSRFTokenIsRefused(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	r.pending(t, "c1", "tst")
	res := r.post(t, "release", "/approvals/decide", url.Values{"csrf": {""}, "ids[]": {"c1"}, "decision": {"approve"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a decision without CSRF token: %s, want 403", res.Status)
	}
	st, _ := approval.Open(t.Context(), r.js, 1)
	if rec, _ := st.Get(t.Context(), "c1"); rec.State != approval.Pending {
		t.Fatalf("the approval is %s after a refused post", rec.State)
	}
}

func TestTheApprovalsPageFollowsEveryApprovalEventLive(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	_, page := r.body(t, "release", "/approvals")
	_, rest, ok := strings.Cut(page, `id="approvals-live" data-stream="`)
	stream, _, _ := strings.Cut(rest, `"`)
	if !ok || stream != "/timeline/stream?type=approval.*" {
		t.Fatalf("the queue follows %q, want the approval events", stream)
	}
	sr := r.openStream(t, "release", stream)
	eventually(t, "the stream is subscribed", func() bool { return r.srv.live.streams() == 1 })
	r.push(t, "tst", "apps/web", "1", digestOf(1)) // not an approval event
	r.pending(t, "a1", "tst")
	res := r.post(t, "release", "/approvals/decide", url.Values{"ids[]": {"a1"}, "decision": {"approve"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %s", res.Status)
	}
	got := sr.wait(t, 1)
	if got[0].row.Type != "approval.granted" || !strings.Contains(got[0].row.Summary, "a1 granted by rita via console") {
		t.Fatalf("the queue's stream sent %+v, want a1's grant", got[0].row)
	}
}
