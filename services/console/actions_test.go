package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

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
