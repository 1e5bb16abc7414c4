package console

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// actionsRig is a console whose roles let "dev" operate in dev only,
// "release" approve (and so view) everywhere but operate nowhere, and
// "ops" operate everywhere; /web runs one image in dev and another in
// prd, and a rule promotes from dev to tst.
func actionsRig(t *testing.T) (r *consoleRig, devImage, prdImage string) {
	t.Helper()
	cfg := testConfig()
	cfg.Roles[0].Can = []string{"view", "operate"}
	cfg.Clusters = []config.Cluster{
		{Name: "dev-a", Environment: "dev", Type: "marathon"},
		{Name: "prd-a", Environment: "prd", Type: "marathon"},
	}
	cfg.Promotions = []config.Promotion{{Name: "dev-to-tst", From: "dev", To: "tst", Repositories: []string{"apps/**"}}}
	r = newConsoleRig(t, cfg)
	devImage, prdImage = imageDigest(11), imageDigest(12)
	run := func(cluster, env, tag, digest string) inventory.Record {
		rec := record(cluster, env, "/web", "apps/web", tag, digest, time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
		rec.Registry, rec.Repository, rec.Tag = "registry."+env, "apps/web", tag
		return rec
	}
	seed(t, r.natsRig, run("dev-a", "dev", "2.0", devImage), run("prd-a", "prd", "1.0", prdImage))
	return r, devImage, prdImage
}

// pagesOf is path as each of the rig's users gets it, by user.
func pagesOf(t *testing.T, r *consoleRig, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, user := range []string{"dev", "release", "ops"} {
		code, body := r.body(t, user, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s as %s: %d", path, user, code)
		}
		out[user] = body
	}
	return out
}

// cellHTML is the matrix cell of /web on cluster in a page or fragment
// ("" when there is none).
func cellHTML(body, cluster string) string {
	return between(body, `data-cell="`+cluster+` /web"`, `</td>`)
}

func TestTheMatrixShowsAWorkloadsButtonsOnlyWhereTheUserMayOperate(t *testing.T) {
	r, _, _ := actionsRig(t)
	for _, path := range []string{"/", "/?fragment=live"} {
		ops := pagesOf(t, r, path)
		token := r.csrf(t, "ops")
		for _, cluster := range []string{"dev-a", "prd-a"} {
			cell := cellHTML(ops["ops"], cluster)
			for _, want := range []string{`<details class="actions">`, `action="/actions/rollback"`, `action="/actions/redeploy"`,
				`name="cluster" value="` + cluster + `"`, `name="appId" value="/web"`, `name="csrf" value="` + token + `"`} {
				if !strings.Contains(cell, want) {
					t.Errorf("GET %s: an operator's %s cell lacks %q:\n%s", path, cluster, want, cell)
				}
			}
		}
		if cell := cellHTML(ops["dev"], "dev-a"); !strings.Contains(cell, `action="/actions/rollback"`) {
			t.Errorf("GET %s: the developer, who operates in dev, has no rollback in the dev cell:\n%s", path, cell)
		}
		if strings.Contains(ops["dev"], "prd-a") {
			t.Errorf("GET %s: the developer sees prd", path)
		}
		for _, cluster := range []string{"dev-a", "prd-a"} {
			cell := cellHTML(ops["release"], cluster)
			if cell == "" {
				t.Fatalf("GET %s: the release manager, who may view %s, has no cell there", path, cluster)
			}
			if strings.Contains(cell, "<form") {
				t.Errorf("GET %s: the release manager, who may not operate, has buttons in the %s cell:\n%s", path, cluster, cell)
			}
		}
	}
}

func TestTheImagePageShowsEachRunsButtonsAndThePromotionsTheUserMayAskFor(t *testing.T) {
	r, devImage, _ := actionsRig(t)
	for _, path := range []string{"/images/" + devImage, "/images/" + devImage + "?fragment=live"} {
		body := pagesOf(t, r, path)
		run := between(body["dev"], `data-cell="dev-a /web"`, `</tr>`)
		for _, want := range []string{`action="/actions/rollback"`, `action="/actions/redeploy"`, `name="cluster" value="dev-a"`} {
			if !strings.Contains(run, want) {
				t.Errorf("GET %s: the developer's run in dev lacks %q:\n%s", path, want, run)
			}
		}
		if strings.Contains(run, "<details") {
			t.Errorf("GET %s: the image page folds a run's buttons in a menu:\n%s", path, run)
		}
		// Promoting to tst needs operate in tst: the developer may not.
		if strings.Contains(body["dev"], `action="/actions/promote"`) {
			t.Errorf("GET %s: the developer, who may not operate in tst, may promote there", path)
		}
		if strings.Contains(body["release"], "<form method=\"post\" action=\"/actions/") {
			t.Errorf("GET %s: the release manager, who may not operate, has action buttons", path)
		}
		for _, want := range []string{`action="/actions/promote"`, `name="promotion" value="dev-to-tst"`,
			`name="image" value="registry.dev/apps/web:2.0@` + devImage + `"`, "Promote to tst"} {
			if !strings.Contains(body["ops"], want) {
				t.Errorf("GET %s: the operator's page lacks %q", path, want)
			}
		}
	}
}

func TestTheDeadLetterPageHighlightsTheDeadLettersEntry(t *testing.T) {
	r := deadLetterRig(t)
	_, dl := r.deadLetter(t, "dev")
	code, body := r.body(t, "ops", "/deadletters/"+strconv.FormatUint(dl.Seq, 10))
	if code != http.StatusOK {
		t.Fatalf("GET the dead letter: %d\n%s", code, body)
	}
	if !strings.Contains(body, `<a href="/deadletters" aria-current="page">Dead letters</a>`) {
		t.Errorf("the dead letter's page does not mark its navigation entry as current:\n%s", between(body, "<nav", "</nav>"))
	}
}
