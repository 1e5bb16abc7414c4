package console

import (
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

func TestARedeployFromTheConsoleIsAnnouncedWithTheUserAsActorAndNeedsOperate(t *testing.T) {
	cfg := testConfig()
	cfg.Clusters = []config.Cluster{{Name: "prd-1", Environment: "prd", Type: "marathon"}}
	r := newConsoleRig(t, cfg)
	rec := testkit.Record(t, r.js, "slipway.action.>")

	if res := r.post(t, "release", "/actions/redeploy", url.Values{"cluster": {"prd-1"}, "appId": {"/web"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a redeploy by a user without operate: %s, want 403", res.Status)
	}
	res := r.post(t, "ops", "/actions/redeploy", url.Values{"cluster": {"prd-1"}, "appId": {"/web"}, "reason": {"stuck"}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/timeline?id=") {
		t.Fatalf("redeploy: %s to %s", res.Status, res.Header.Get("Location"))
	}
	got := rec.Wait(t, events.TypeActionRequested, 1)
	d, err := events.DataAs[events.ActionRequested](got[0])
	if err != nil || len(got) != 1 || d.Actor != "otto" || d.Via != events.ViaConsole || d.Action != events.ActionRedeploy ||
		d.Target.Environment != "prd" || d.Reason != "stuck" {
		t.Fatalf("%d action events, the first %+v (%v)", len(got), d, err)
	}
	if want := "/timeline?id=" + url.QueryEscape(got[0].ID()); res.Header.Get("Location") != want {
		t.Fatalf("the answer links %s, want %s", res.Header.Get("Location"), want)
	}
}

func TestTheActionButtonsShowOnlyToOperatorsOfTheEnvironmentAndPostWhatTheActionsRead(t *testing.T) {
	cfg := testConfig()
	cfg.Clusters = []config.Cluster{{Name: "prd-1", Environment: "prd", Type: "marathon"}}
	cfg.Promotions = []config.Promotion{{Name: "tst-to-prd", From: "tst", To: "prd", Repositories: []string{"apps/**"}}}
	r := newConsoleRig(t, cfg)
	partial, err := parsePartials(template.New("").Funcs(viewFuncs))
	if err != nil {
		t.Fatal(err)
	}
	render := func(user string, view func(echo.Context) *actionsView) string {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Test-User", user)
		var b strings.Builder
		// Through the login, as a page is: the session's CSRF token.
		err := r.srv.auth.Require()(func(c echo.Context) error {
			return partial.ExecuteTemplate(&b, "actions", view(c))
		})(echo.New().NewContext(req, httptest.NewRecorder()))
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	token := r.csrf(t, "ops")
	workload := func(c echo.Context) *actionsView { return r.srv.workloadActions(c, "prd-1", "web", true) }
	image := func(c echo.Context) *actionsView {
		return r.srv.promoteActions(c, "registry.tst/apps/web:1.0@"+digestOf(1), false)
	}
	for _, user := range []string{"dev", "release"} {
		if html := render(user, workload) + render(user, image); strings.Contains(html, "<form") {
			t.Errorf("%s, who may not operate in prd, gets buttons:\n%s", user, html)
		}
	}

	html := render("ops", workload)
	for _, want := range []string{`<details class="actions">`, `action="/actions/rollback"`, `action="/actions/redeploy"`,
		`name="cluster" value="prd-1"`, `name="appId" value="/web"`, `name="csrf" value="` + token + `"`, "Roll back", "Redeploy", `name="reason"`} {
		if !strings.Contains(html, want) {
			t.Errorf("an operator's workload buttons lack %q:\n%s", want, html)
		}
	}
	html = render("ops", image)
	for _, want := range []string{`action="/actions/promote"`, `name="promotion" value="tst-to-prd"`, `name="image" value="registry.tst/apps/web:1.0@` + digestOf(1), "Promote to prd"} {
		if !strings.Contains(html, want) {
			t.Errorf("an operator's image buttons lack %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "<details") {
		t.Errorf("the image page's buttons are folded in a menu:\n%s", html)
	}
}
