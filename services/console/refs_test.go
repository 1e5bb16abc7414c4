package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
)

func TestRefShowsRepositoryAndTagWithTheRegistryApartAndAShortDigest(t *testing.T) {
	full := "registry.example:5000/apps/web:1.4.0@" + digestOf(0xabc)
	got := string(ref(full))
	for _, want := range []string{
		`<span class="ref" title="` + full + `">`,
		`<span class="registry">registry.example:5000/<wbr></span>`,
		`<span class="repo">apps/<wbr>web</span><span class="tag">:1.4.0</span>`,
		` <a href="/images/` + digestOf(0xabc) + `"><code class="digest">` + shortDigest(digestOf(0xabc)) + `</code></a>`,
		`data-copy="` + full + `"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ref(%s) lacks %s:\n%s", full, want, got)
		}
	}
	if strings.Count(got, digestOf(0xabc)) != 3 { // title, link, copy
		t.Errorf("the full digest shows outside the title, link and copy:\n%s", got)
	}
	if name := string(refName(full)); strings.Contains(name, `class="digest"`) || !strings.Contains(name, `title="`+full+`"`) {
		t.Errorf("refName shows the digest or loses it from the title:\n%s", name)
	}
	ir := events.ImageRef{Environment: "tst", Registry: "localhost:5000", Repository: "apps/api", Tag: "2", Digest: digestOf(7)}
	if got := string(ref(ir)); !strings.Contains(got, `title="localhost:5000/apps/api:2@`+digestOf(7)+`"`) ||
		!strings.Contains(got, `<span class="registry">localhost:5000/<wbr></span>`) {
		t.Errorf("ref of an events.ImageRef:\n%s", got)
	}
	if got := string(ref("apps/web:1")); strings.Contains(got, "registry") || !strings.Contains(got, `<span class="repo">apps/<wbr>web</span><span class="tag">:1</span>`) {
		t.Errorf("a reference without a registry:\n%s", got)
	}
	if ref("") != "-" {
		t.Errorf("ref of nothing is %q; want -", ref(""))
	}
}

func TestRefEscapesEveryPartAndLinksOnlyADigest(t *testing.T) {
	evil := `reg.example/<script>alert(1)</script>:"x@sha256:"><img src=x onerror=alert(2)>`
	got := string(ref(evil))
	for _, bad := range []string{"<script", "<img", `"x`, "/images/"} {
		if strings.Contains(got, bad) {
			t.Errorf("ref(%s) contains %s:\n%s", evil, bad, got)
		}
	}
	if !strings.Contains(got, "&lt;script&gt;") {
		t.Errorf("the text is not shown escaped:\n%s", got)
	}
}

func TestAtShowsTheTimeOfDayTodayAndTheDateOtherwise(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	if got, want := string(at(now)), `<time datetime="`+now.Format(time.RFC3339)+`" title="`+now.Format("2006-01-02 15:04:05")+` UTC">`+now.Format("15:04:05")+`</time>`; got != want {
		t.Errorf("today: %s; want %s", got, want)
	}
	old := time.Date(2026, 5, 1, 9, 30, 15, 0, time.FixedZone("CEST", 2*3600))
	if got, want := string(at(old)), `<time datetime="2026-05-01T07:30:15Z" title="2026-05-01 07:30:15 UTC">2026-05-01 07:30</time>`; got != want {
		t.Errorf("another day: %s; want %s", got, want)
	}
	if at(time.Time{}) != "-" {
		t.Errorf("no time: %s; want -", at(time.Time{}))
	}
}

func TestTheTimelineShowsEachReferenceCompactAndTheEventIdShort(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	e := r.push(t, "dev", "apps/web", "1.4.0", digestOf(1))
	eventually(t, "the push stored", func() bool { return r.srv.recent.lastSeq() >= 1 })

	code, page := r.body(t, "dev", "/timeline")
	if code != http.StatusOK {
		t.Fatalf("GET /timeline: %d", code)
	}
	what := between(page, `<td class="what">`, `</td>`)
	for _, want := range []string{
		`<span class="ref" title="registry.dev/apps/web:1.4.0@` + digestOf(1) + `">`,
		`</span> pushed to dev`,
		`<span class="id" title="` + e.ID() + `">` + e.ID()[:8] + `…</span>`,
	} {
		if !strings.Contains(what, want) {
			t.Errorf("the event's What lacks %s:\n%s", want, what)
		}
	}

	_, body := r.body(t, "dev", "/api/events")
	var v struct{ Events []eventRow }
	if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Events) != 1 {
		t.Fatalf("/api/events: %v\n%s", err, body)
	}
	parts := v.Events[0].Parts
	if len(parts) != 2 || parts[0].Ref == nil || parts[0].Ref.Repository != "apps/web" || parts[0].Ref.Digest != digestOf(1) || parts[1].Text != " pushed to dev" {
		t.Errorf("the row's parts %+v; want the reference, then the text", parts)
	}
	if want := "registry.dev/apps/web:1.4.0@" + digestOf(1) + " pushed to dev"; v.Events[0].Summary != want {
		t.Errorf("summary %q; want %q", v.Events[0].Summary, want)
	}
}

func TestEachPendingApprovalHasItsOwnDecisionForm(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	r.pending(t, "a1", "tst")
	r.pending(t, "a2", "tst")
	_, page := r.body(t, "release", "/approvals")
	row := between(page, `<tr id="approval-a1">`, `</tr>`)
	for _, want := range []string{
		`<input type="text" name="reason" form="decide-a1"`,
		`<button type="submit" form="decide-a1" name="decision" value="approve">Approve</button>`,
		`<button type="submit" form="decide-a1" name="decision" value="reject"`,
		`<span class="envs">dev → tst</span>`,
		`<span class="repo">apps/<wbr>web</span>`,
		`<code title="` + digestOf(1) + `">` + shortDigest(digestOf(1)) + `</code>`,
	} {
		if !strings.Contains(row, want) {
			t.Errorf("a1's row lacks %s:\n%s", want, row)
		}
	}
	form := between(page, `<form method="post" action="/approvals/decide" id="decide-a1"`, `</form>`)
	if !strings.Contains(form, `name="csrf" value="`+r.csrf(t, "release")+`"`) || !strings.Contains(form, `<input type="hidden" name="ids" value="a1">`) {
		t.Errorf("a1's own form lacks the CSRF token or its id:\n%s", form)
	}

	// What the row's form posts: its id, its button's decision, its reason.
	res := r.post(t, "release", "/approvals/decide", url.Values{"ids": {"a1"}, "decision": {"reject"}, "reason": {"not yet"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the row's reject: %s", res.Status)
	}
	st, err := approval.Open(t.Context(), r.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := st.Get(t.Context(), "a1")
	a2, _ := st.Get(t.Context(), "a2")
	if a1.StateAt(time.Now()) != approval.Rejected || a1.Reason != "not yet" || a2.StateAt(time.Now()) != approval.Pending {
		t.Errorf("a1 %s (%q), a2 %s; want a1 rejected with its reason, a2 still pending", a1.StateAt(time.Now()), a1.Reason, a2.StateAt(time.Now()))
	}
}
