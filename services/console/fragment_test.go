package console

import (
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// attr is the unescaped value of the first attribute name="…" in body.
func attr(t testing.TB, body, name string) string {
	t.Helper()
	m := regexp.MustCompile(` ` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s attribute in:\n%s", name, body)
	}
	return html.UnescapeString(m[1])
}

// between is the text of body from the first start to the end of the
// next end after it ("" when either is missing).
func between(body, start, end string) string {
	i := strings.Index(body, start)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], end)
	if j < 0 {
		return ""
	}
	return body[i : i+j+len(end)]
}

func TestTheMatrixFragmentIsThePagesTableWithThePagesFilters(t *testing.T) {
	rig := newNATSRig(t)
	seed(t, rig, shopRecords()...)
	hs, _ := viewsServer(t, threeEnvs(), rig)

	_, page := get(t, hs.URL+"/?env=tst")
	frag := attr(t, page, "data-fragment")
	if frag != "/?env=tst&fragment=live" {
		t.Fatalf("the page's data-fragment is %q, want its own query with fragment=live", frag)
	}
	resp, body := get(t, hs.URL+frag)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %s %s", frag, resp.Status, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("the fragment's Content-Security-Policy is %q", csp)
	}
	for _, layout := range []string{"<html", "<header", "<nav", `<form class="filters"`, "<script"} {
		if strings.Contains(body, layout) {
			t.Errorf("the fragment has %s: want the live part alone", layout)
		}
	}
	table := between(body, `<table class="matrix">`, `</table>`)
	if table == "" || table != between(page, `<table class="matrix">`, `</table>`) {
		t.Fatalf("the fragment's table differs from the page's:\n%s\n---\n%s", table, page)
	}
	if !strings.Contains(table, `data-cell="tst-a /shop/web"`) || strings.Contains(table, "dev-a") || strings.Contains(table, "prd-a") {
		t.Errorf("env=tst: the fragment shows other environments' cells or lacks tst-a's:\n%s", table)
	}

	_, body = get(t, hs.URL+"/?repository=tools/**&fragment=live")
	if !strings.Contains(body, `data-cell="dev-a /tools/copy"`) || strings.Contains(body, "/shop/") {
		t.Errorf("repository=tools/**: the fragment is\n%s", body)
	}
	if resp, _ := get(t, hs.URL+"/?fragment=whole"); resp.StatusCode != 400 {
		t.Errorf("an unknown fragment: %s; want 400", resp.Status)
	}
}

func TestTheMatrixFragmentShowsWhatTheInventorySaysNow(t *testing.T) {
	rig := newNATSRig(t)
	seed(t, rig, shopRecords()...)
	hs, _ := viewsServer(t, threeEnvs(), rig)
	_, before := get(t, hs.URL+"/?fragment=live")
	if strings.Contains(before, shortDigest(imageDigest(8))) {
		t.Fatal("the digest the test deploys is already shown")
	}

	// prd-a deploys shop/web 2.1 (the deployer writes the inventory, then
	// says so on the stream).
	deployed := record("prd-a", "prd", "/shop/web", "shop/web", "2.1", imageDigest(8), time.Now())
	deployed.LastDeployment = &inventory.Deployment{ToImage: "registry.prd/shop/web:2.1", Outcome: inventory.Succeeded, At: time.Now()}
	seed(t, rig, deployed)

	_, after := get(t, hs.URL+"/?fragment=live")
	cell := between(after, `data-cell="prd-a /shop/web">`, `</td>`)
	if !strings.Contains(cell, `<span class="tag">2.1</span> <code>`+shortDigest(imageDigest(8))+`</code>`) {
		t.Errorf("after the deployment prd-a's cell is %q, want 2.1", cell)
	}
}

func TestADevOnlyUsersFragmentsHaveNoPrd(t *testing.T) {
	rig := newNATSRig(t)
	seed(t, rig, shopRecords()...)
	hs, s := viewsServer(t, threeEnvs(), rig)
	prdOnly := imageDigest(1)
	rig.push(t, "prd", "shop/web", "1.0", prdOnly)
	eventually(t, "the prd push is in the recent events", func() bool { return len(s.recent.ByDigest(prdOnly)) > 0 })
	devOnly(s)

	for _, path := range []string{"/?fragment=live", "/?env=prd&fragment=live", "/images/" + imageDigest(2) + "?fragment=live"} {
		resp, body := get(t, hs.URL+path)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		for _, hidden := range []string{"prd", "tst-a", shortDigest(prdOnly)} {
			if strings.Contains(body, hidden) {
				t.Errorf("GET %s shows %q to a dev-only user:\n%s", path, hidden, body)
			}
		}
	}
	if !strings.Contains(get2(t, hs.URL+"/?fragment=live"), `data-cell="dev-a /shop/web"`) {
		t.Error("the dev-only user's fragment lacks dev's own cells")
	}
	if resp, _ := get(t, hs.URL+"/images/"+prdOnly+"?fragment=live"); resp.StatusCode != 404 {
		t.Errorf("the fragment of an image of prd alone: %s; want 404", resp.Status)
	}
}

// get2 is the body of url.
func get2(t testing.TB, url string) string {
	t.Helper()
	_, body := get(t, url)
	return body
}

func TestTheImageFragmentIsWhereItRunsAndItsTimelineWithoutAskingRegistries(t *testing.T) {
	rig := newNATSRig(t)
	d := imageDigest(7)
	seed(t, rig, record("dev-a", "dev", "/shop/web", "shop/web", "2.0", d, time.Now()))
	hs, s := viewsServer(t, threeEnvs(), rig)
	push := rig.push(t, "dev", "shop/web", "2.0", d)
	eventually(t, "the push is in the recent events", func() bool { return len(s.recent.ByDigest(d)) > 0 })

	_, page := get(t, hs.URL+"/images/"+d)
	frag := attr(t, page, "data-fragment")
	if frag != "/images/"+d+"?fragment=live" || attr(t, page, "data-digest") != d {
		t.Fatalf("the image page's live region: fragment %q digest %q", frag, attr(t, page, "data-digest"))
	}
	resp, body := get(t, hs.URL+frag)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", frag, resp.Status)
	}
	for _, want := range []string{"<h2>Where it runs</h2>", `<tr data-cell="dev-a /shop/web">`, "<h2>Timeline</h2>", `<li id="ev-` + push.ID() + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the image fragment lacks %s:\n%s", want, body)
		}
	}
	// registry.dev does not resolve: the page says so, the fragment does
	// not ask.
	if !strings.Contains(page, "unavailable") {
		t.Error("the page does not show registry.dev's referrers unavailable")
	}
	for _, absent := range []string{"Referrers", "unavailable", "Promotions and approvals", "<html"} {
		if strings.Contains(body, absent) {
			t.Errorf("the image fragment has %q: want where it runs and the timeline alone", absent)
		}
	}
}

func TestFragmentsEscapeWhatTheyShow(t *testing.T) {
	rig := newNATSRig(t)
	evil := `<script>alert(1)</script>`
	r := record("dev-a", "dev", "/x", "shop/"+evil, "t"+evil, imageDigest(5), time.Now())
	r.Repository, r.Tag = "shop/"+evil, "t"+evil
	r.Drift = evil
	seed(t, rig, r)
	hs, _ := viewsServer(t, threeEnvs(), rig)
	rig.publish(t, events.Spec{ID: "evil-1", Type: events.TypeActionRequested, Source: "/test", Environment: "dev",
		Subject: evil, Data: map[string]string{"actor": evil, "digest": imageDigest(5)}})
	eventually(t, "the event is on the image page", func() bool {
		return strings.Contains(get2(t, hs.URL+"/images/"+imageDigest(5)+"?fragment=live"), "evil-1")
	})
	for _, path := range []string{"/?fragment=live", "/?fragment=live&repository=" + "shop/**", "/images/" + imageDigest(5) + "?fragment=live"} {
		body := get2(t, hs.URL+path)
		if strings.Contains(body, "<script>alert") {
			t.Errorf("GET %s writes a payload's markup unescaped", path)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the name at all:\n%s", path, body)
		}
	}
	// A query the page echoes into its data- attributes stays an
	// attribute value.
	body := get2(t, hs.URL+`/?repository="><script>alert(1)</script>`)
	if strings.Contains(body, "<script>alert") {
		t.Error("the page writes its query into an attribute unescaped")
	}
}

func TestTheMatrixPagesStreamStartsAfterWhatThePageShowed(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	shown := r.push(t, "dev", "apps/web", "1", digestOf(1))
	eventually(t, "the store has read the first push", func() bool { _, ok := r.srv.recent.ByID(shown.ID()); return ok })

	_, page := r.body(t, "ops", "/?env=dev")
	stream := attr(t, page, "data-stream")
	if want := "/timeline/stream?after=" + strconv.FormatUint(r.srv.recent.lastSeq(), 10) + "&env=dev"; stream != want {
		t.Fatalf("the page's stream is %q, want %q", stream, want)
	}
	if types := strings.Fields(attr(t, page, "data-types")); len(types) != len(matrixEventTypes) {
		t.Errorf("the page's event types %v, want %v", types, matrixEventTypes)
	}
	// An event between the page and its stream is not lost: the stream
	// replays it, and not the one the page already showed.
	between := r.push(t, "dev", "apps/web", "2", digestOf(2))
	eventually(t, "the store has read the second push", func() bool { _, ok := r.srv.recent.ByID(between.ID()); return ok })
	sr := r.openStream(t, "ops", stream)
	if got := sr.wait(t, 1); got[0].row.ID != between.ID() {
		t.Errorf("the page's stream sent %v first, want %s", idsOf(got), between.ID())
	}
}
