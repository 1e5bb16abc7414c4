package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// TestConsoleInTheBrowser drives the console in headless Chromium against
// the whole system: people log in at a real OpenID provider, watch pushes
// fill the release matrix, decide approvals, redrive a dead letter and roll
// a workload back, each as a real click whose event the test reads off
// the stream. It takes a screenshot of every view on the way.
func TestConsoleInTheBrowser(t *testing.T) {
	s := startConsoleSys(t)
	b := startBrowser(t)
	rita := openTab(t, b, s.URL)

	t.Run("a release manager logs in at the provider and lands on the matrix", func(t *testing.T) {
		rita.t = t
		rita.open("/")
		rita.waitJS("the provider's login form", `!!document.querySelector("#username")`)
		if !strings.HasPrefix(rita.location(), s.OP.Issuer) {
			t.Fatalf("the console sent a browser without a session to %s, want the provider %s", rita.location(), s.OP.Issuer)
		}
		rita.screenshot("login")
		rita.login(consoleReleaseManager)
		if got := rita.text("header .user"); got != consoleReleaseManager.Email {
			t.Errorf("the header names %q, want %q", got, consoleReleaseManager.Email)
		}
		if !s.OP.SignedIn(consoleReleaseManager.Username) {
			t.Error("the provider has no session for the user the console let in")
		}
	})

	t.Run("a push fills the matrix stage by stage and the prd cell changes live when the approval is granted in the queue", func(t *testing.T) {
		rita.t = t
		rita.ensureLogin(consoleReleaseManager)
		rita.open("/")
		rita.markPage()
		ref := s.push(t, "dev", "apps/web", "1.1.0")
		digest := ref[strings.LastIndex(ref, "@")+1:]
		rita.waitCell("/web", "dev-marathon", "1.1.0")
		rita.waitCell("/web", "tst-marathon", "1.1.0")
		id := s.approvalFor(t, "apps/web", "1.1.0")
		if got := rita.cell("/web", "prd-marathon"); strings.Contains(got, "1.1.0") {
			t.Fatalf("prd runs 1.1.0 before anyone approved: %q", got)
		}
		rita.screenshot("matrix")

		queue := rita.sibling()
		queue.open("/approvals")
		queue.waitJS("the approval in the queue", fmt.Sprintf(`document.body.innerText.includes(%q)`, "apps/web"))
		queue.check("apps/web")
		queue.clickButton("approve selected")
		d := s.waitEvent(t, "the granted approval", events.TypeApprovalGranted, func(e events.Event) bool {
			d, err := events.DataAs[events.ApprovalDecision](e)
			return err == nil && d.ApprovalID == id
		})
		if dd, _ := events.DataAs[events.ApprovalDecision](d); dd.By != consoleReleaseManager.Email || dd.Via != events.ViaConsole {
			t.Errorf("the decision names by %q via %q, want %q via console", dd.By, dd.Via, consoleReleaseManager.Email)
		}
		rita.waitCell("/web", "prd-marathon", "1.1.0")
		if !rita.pageKept() {
			t.Error("the matrix was reloaded to show prd; want the cell changed in place")
		}
		if img := s.Marathons["prd"].image(t, "/web"); !strings.HasSuffix(img, "@"+digest) {
			t.Errorf("prd's /web runs %s, want the approved digest %s", img, digest)
		}
		rita.open("/images/" + digest)
		rita.waitJS("the image page's story", `document.body.innerText.includes("prd")`)
		rita.screenshot("image")
	})

	t.Run("three pending approvals are approved in one submit, each its own decision", func(t *testing.T) {
		rita.t = t
		rita.ensureLogin(consoleReleaseManager)
		repos := []string{"apps/bulk-a", "apps/bulk-b", "apps/bulk-c"}
		ids := map[string]bool{}
		for _, r := range repos {
			s.push(t, "dev", r, "2.0.0")
		}
		for _, r := range repos {
			ids[s.approvalFor(t, r, "2.0.0")] = true
		}
		rita.open("/approvals")
		for _, r := range repos {
			rita.waitJS(r+" in the queue", fmt.Sprintf(`document.body.innerText.includes(%q)`, r))
			rita.check(r)
		}
		rita.screenshot("approvals")
		rita.clickButton("approve selected")
		testkit.WaitFor(t, "three decisions", func() bool {
			n := 0
			for id, e := range s.decisions() {
				if ids[id] && events.Type(e.Type()) == events.TypeApprovalGranted {
					n++
				}
			}
			return n == 3
		})
		for id, e := range s.decisions() {
			if !ids[id] {
				continue
			}
			d, _ := events.DataAs[events.ApprovalDecision](e)
			if d.By != consoleReleaseManager.Email || d.Via != events.ViaConsole {
				t.Errorf("decision of %s: by %q via %q, want %q via console", id, d.By, d.Via, consoleReleaseManager.Email)
			}
		}
	})

	t.Run("a dead letter is redriven from its page once its cause is fixed, and its consumer handles it", func(t *testing.T) {
		rita.t = t
		rita.ensureLogin(consoleReleaseManager)
		s.push(t, "dev", "apps/flaky", "1.0.0")
		pushed := s.waitEvent(t, "the push of apps/flaky", events.TypeImagePushed, func(e events.Event) bool {
			d, err := events.DataAs[events.ImagePushed](e)
			return err == nil && d.Repository == "apps/flaky" && d.Environment == "dev"
		})
		rita.open("/deadletters")
		rita.waitJS("the dead letter in the list", fmt.Sprintf(`document.body.innerText.includes(%q)`, flakyConsumerName))
		if s.flaky.handledOnce(pushed.ID()) {
			t.Fatal("the consumer handled the event before its cause was fixed")
		}
		rita.check(flakyConsumerName)
		rita.screenshot("deadletters")
		rita.followLink(flakyConsumerName)
		rita.waitJS("the dead letter's page", `document.body.innerText.includes("apps/flaky")`)
		rita.screenshot("deadletter")
		page := rita.location()
		// The cause is fixed (the changelog service takes entries again):
		// now a redrive can succeed, once the stream has forgotten the
		// event's id (its duplicate window, shortened to a second here,
		// which JetStream forgets on its own schedule); until then the
		// console keeps the dead letter and says to try again later, as
		// the person then does.
		s.flaky.fix()
		s.waitRedrivable(t, pushed.ID())
		var outcomes []string
		testkit.WaitFor(t, "the dead letter redriven", func() bool {
			rita.open(page)
			rita.clickButton("redrive")
			rita.waitJS("the redrive's outcome", `location.pathname === "/deadletters" && !!document.querySelector(".flash")`)
			flash := rita.text(".flash")
			outcomes = append(outcomes, flash)
			if !strings.Contains(flash, "redriven") && !strings.Contains(flash, "kept") {
				t.Fatalf("the redrive says %q, want redriven or kept for later", flash)
			}
			return strings.Contains(flash, "redriven")
		})
		t.Logf("redrive outcomes: %q", outcomes)
		testkit.WaitFor(t, "the redrive announced", func() bool {
			for _, a := range s.actionsOf(events.ActionRedrive) {
				if a.Target.EventID == pushed.ID() && a.Actor == consoleReleaseManager.Email && a.Via == events.ViaConsole {
					return true
				}
			}
			return false
		})
		testkit.WaitFor(t, "the redriven event handled by its consumer", func() bool { return s.flaky.handledOnce(pushed.ID()) })
		again := 0
		for _, e := range s.Events.Of(events.TypeImagePushed) {
			if e.ID() == pushed.ID() {
				again++
			}
		}
		if again != 2 {
			t.Errorf("the event %s is %d times on its subject, want twice (the push and the redrive)", pushed.ID(), again)
		}
		rita.open("/deadletters")
		if body := rita.text("main"); strings.Contains(body, pushed.ID()) || strings.Contains(body, flakyConsumerName) {
			t.Errorf("the redriven dead letter is still listed:\n%s", body)
		}
	})

	t.Run("a workload rolled back from the matrix goes back to its previous image, and the matrix shows it live", func(t *testing.T) {
		rita.t = t
		rita.ensureLogin(consoleReleaseManager)
		s.push(t, "dev", "apps/rollback", "1.1.0")
		rita.waitCellReloading("/rollback", "dev-marathon", "1.1.0")
		before := s.Marathons["dev"].image(t, "/rollback")
		// A second window of the same person keeps the matrix open.
		watcher := rita.sibling()
		watcher.open("/")
		watcher.waitCell("/rollback", "dev-marathon", "1.1.0")
		watcher.markPage()
		rita.rollback("/rollback", "dev-marathon")
		act := s.waitEvent(t, "the rollback announced", events.TypeActionRequested, func(e events.Event) bool {
			d, err := events.DataAs[events.ActionRequested](e)
			return err == nil && d.Action == events.ActionRollback && d.Target.AppID == "/rollback" && d.Target.Cluster == "dev-marathon"
		})
		a, _ := events.DataAs[events.ActionRequested](act)
		if a.Actor != consoleReleaseManager.Email || a.Via != events.ViaConsole {
			t.Errorf("the rollback names %q via %q, want %q via console", a.Actor, a.Via, consoleReleaseManager.Email)
		}
		for _, typ := range []events.Type{events.TypeDeploymentStarted, events.TypeDeploymentSucceeded} {
			e := s.waitEvent(t, "the rollback's "+string(typ), typ, func(e events.Event) bool {
				d, err := events.DataAs[events.Deployment](e)
				return err == nil && d.Action == events.ActionRollback && d.AppID == "/rollback" && e.Extensions()["causationid"] == act.ID()
			})
			d, _ := events.DataAs[events.Deployment](e)
			if d.FromImage != before || !strings.Contains(d.ToImage, "apps/rollback:1.0.0") {
				t.Errorf("%s: the rollback went from %s to %s, want from %s back to 1.0.0", typ, d.FromImage, d.ToImage, before)
			}
		}
		if img := s.Marathons["dev"].image(t, "/rollback"); !strings.Contains(img, "apps/rollback:1.0.0") {
			t.Errorf("dev's /rollback runs %s after the rollback, want 1.0.0", img)
		}
		watcher.waitCell("/rollback", "dev-marathon", "1.0.0")
		if !watcher.pageKept() {
			t.Error("the matrix was reloaded to show the rollback; want the cell changed in place")
		}
	})

	t.Run("the timeline, inventory and audit show what happened", func(t *testing.T) {
		rita.t = t
		rita.ensureLogin(consoleReleaseManager)
		rita.open("/timeline")
		rita.waitJS("events on the timeline", `document.body.innerText.includes("apps/web")`)
		rita.screenshot("timeline")
		rita.open("/inventory?repository=apps/web")
		rita.waitJS("the workloads of apps/web", `document.body.innerText.includes("/web")`)
		rita.screenshot("inventory")
		rita.open("/audit")
		rita.waitJS("the decisions and actions in the audit", fmt.Sprintf(`document.body.innerText.includes(%q)`, consoleReleaseManager.Email))
		rita.screenshot("audit")
	})

	t.Run("a dev-only developer never sees prd, live or not, and may not decide a prd approval", func(t *testing.T) {
		dana := openTab(t, b, s.URL)
		dana.login(consoleDeveloper)
		pending := s.push(t, "dev", "apps/pending", "3.0.0")
		pendingID := s.approvalFor(t, "apps/pending", "3.0.0")
		secret := s.push(t, "prd", "apps/secret", "9.9.9") // a digest only prd has
		s.waitEvent(t, "the direct push to prd", events.TypeImagePushed, func(e events.Event) bool {
			d, err := events.DataAs[events.ImagePushed](e)
			return err == nil && d.Repository == "apps/secret"
		})
		_ = pending
		noPrd := func(what, body string) {
			t.Helper()
			for _, leak := range []string{s.Regs["prd"].Host, "prd-marathon", "apps/secret", ">prd<", `"prd"`, pendingID} {
				if strings.Contains(body, leak) {
					t.Errorf("%s shows %q to a developer who may view dev only", what, leak)
				}
			}
		}
		// The timeline stays open while prd events flow; a dev event
		// arrives live, the prd ones never do.
		dana.open("/timeline")
		dana.markPage()
		s.push(t, "prd", "apps/secret", "9.9.10")
		s.push(t, "dev", "apps/web", "1.2.0")
		dana.waitJS("the dev push live on the timeline", `document.body.innerText.includes("1.2.0")`)
		if !dana.pageKept() {
			t.Error("the timeline was reloaded; want the event added live")
		}
		noPrd("the live timeline", dana.html())
		for _, path := range []string{"/", "/timeline", "/approvals", "/inventory", "/inventory?env=prd", "/inventory?format=csv", "/api/matrix", "/api/events", "/api/inventory"} {
			code, body := dana.fetch(http.MethodGet, path, nil, nil)
			if code != http.StatusOK {
				t.Errorf("GET %s: %d, want 200", path, code)
			}
			noPrd("GET "+path, body)
		}
		secretDigest := secret[strings.LastIndex(secret, "@")+1:]
		for _, path := range []string{"/images/" + secretDigest, "/api/images/" + secretDigest} {
			if code, _ := dana.fetch(http.MethodGet, path, nil, nil); code != http.StatusNotFound {
				t.Errorf("GET %s of a digest only prd has: %d, want 404", path, code)
			}
		}
		code, body := dana.fetch(http.MethodPost, "/approvals/decide", map[string]string{"X-CSRF-Token": dana.csrf()},
			map[string]string{"ids": pendingID, "decision": "approve"})
		if code != http.StatusForbidden {
			t.Errorf("a developer's approval of a prd promotion: %d %s, want 403", code, body)
		}
		if _, decided := s.decisions()[pendingID]; decided {
			t.Error("the developer's refused approval was decided anyway")
		}
		// The same refusal as a person gets it: the form posted by the
		// browser, the page it answers with.
		dana.eval(fmt.Sprintf(`(() => {
  const f = document.createElement("form");
  f.method = "post"; f.action = "/approvals/decide";
  for (const [k, v] of Object.entries({csrf: slipway.csrf, ids: %q, decision: "approve"})) {
    const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
  }
  document.body.appendChild(f); f.submit(); return true;
})()`, pendingID), nil)
		dana.waitJS("the refusal page", `location.pathname === "/approvals/decide" && document.readyState === "complete"`)
		dana.screenshot("forbidden")
	})

	t.Run("a forged CSRF token and one replayed after logout are refused, and nothing changes", func(t *testing.T) {
		rita.t = t
		rita.ensureLogin(consoleReleaseManager)
		s.push(t, "dev", "apps/replay", "1.0.0")
		id := s.approvalFor(t, "apps/replay", "1.0.0")
		decide := map[string]string{"ids": id, "decision": "approve"}
		token, cookie := rita.csrf(), rita.sessionCookie()
		if token == "" || cookie == "" {
			t.Fatalf("the page carries CSRF token %q and session cookie %q", token, cookie)
		}
		forged := strings.Repeat("A", len(token))
		if code, body := rita.fetch(http.MethodPost, "/approvals/decide", map[string]string{"X-CSRF-Token": forged}, decide); code != http.StatusForbidden {
			t.Errorf("a forged token: %d %s, want 403", code, body)
		}

		rita.logout()
		if s.OP.SignedIn(consoleReleaseManager.Username) {
			t.Error("the provider still has a session for the user who logged out")
		}
		// The old cookie and token together, as someone who copied them
		// would send them: the session is gone.
		if code := postWithSession(t, s.URL+"/approvals/decide", cookie, token, decide); code != http.StatusUnauthorized {
			t.Errorf("the old session's cookie and token after the logout: %d, want 401", code)
		}
		// The old token in a new session of the same person.
		rita.login(consoleReleaseManager)
		if code, body := rita.fetch(http.MethodPost, "/approvals/decide", map[string]string{"X-CSRF-Token": token}, decide); code != http.StatusForbidden {
			t.Errorf("the token of the session before the logout: %d %s, want 403", code, body)
		}
		if _, decided := s.decisions()[id]; decided {
			t.Error("a refused request decided the approval")
		}
		rita.open("/approvals")
		if body := rita.text("main"); !strings.Contains(body, "apps/replay") {
			t.Errorf("the approval is no longer pending after refused requests:\n%s", body)
		}
	})

	// Last: it shortens the provider's logins for everyone.
	t.Run("an expired session sends the next page to the login", func(t *testing.T) {
		// A login at the provider that lasts as short as its tokens, or the
		// provider would sign the browser in again at once.
		s.OP.SetTokenLifetime(2 * time.Second)
		s.OP.SetSessionLifetime(2 * time.Second)
		otto := openTab(t, b, s.URL)
		otto.login(consoleOperator)
		// The wait is on the condition (the page is the login form),
		// polled by navigating again, not on the clock.
		testkit.WaitFor(t, "the login form after the session expired", func() bool {
			otto.open("/")
			return strings.HasPrefix(otto.location(), s.OP.Issuer)
		})
	})
}

// postWithSession posts form to url with a session cookie and CSRF token
// (a client outside the browser, as a replay would be) and returns the
// status.
func postWithSession(t *testing.T, u, cookie, token string, form map[string]string) int {
	t.Helper()
	v := url.Values{}
	for k, x := range form {
		v.Set(k, x)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", token)
	req.AddCookie(&http.Cookie{Name: consoleSessionCookie, Value: cookie})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
