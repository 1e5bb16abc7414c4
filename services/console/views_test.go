package console

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/compliance"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// imageDigest is a digest of its own for n: no two share a prefix.
func imageDigest(n int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(n)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// threeEnvs is dev, tst and prd with one cluster each (two in prd).
func threeEnvs() *config.Config {
	cfg := &config.Config{}
	for _, e := range []string{"dev", "tst", "prd"} {
		cfg.Environments = append(cfg.Environments, config.Environment{Name: e, Registry: config.Registry{Host: "registry." + e}})
		cfg.Clusters = append(cfg.Clusters, config.Cluster{Name: e + "-a", Environment: e, Type: "docker"})
	}
	cfg.Clusters = append(cfg.Clusters, config.Cluster{Name: "prd-b", Environment: "prd", Type: "docker"})
	return cfg
}

// record is a managed workload of cluster running repo:tag@digest, pushed
// at pushed.
func record(cluster, env, app, repo, tag, digest string, pushed time.Time) inventory.Record {
	return inventory.Record{
		Cluster: cluster, Environment: env, AppID: app, Policy: "any", Platform: "docker",
		Image: "registry." + env + "/" + repo + ":" + tag, Digest: digest, PushedAt: pushed, UpdatedAt: pushed,
		Nodes: []string{"node-" + env + ".example"}, Wanted: 2, Running: 2, Healthy: 2,
	}
}

// seed writes records to the inventory bucket, as the deployer does.
func seed(t testing.TB, rig *natsRig, records ...inventory.Record) {
	t.Helper()
	st, err := inventory.Open(t.Context(), rig.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := st.Put(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, body := get(t, url)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// shopRecords: shop/web runs v2 in dev and tst but v1 in prd (the gap);
// shop/api runs the same digest everywhere; tools/copy runs in dev only.
func shopRecords() []inventory.Record {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	v1, v2, api := imageDigest(1), imageDigest(2), imageDigest(3)
	inFlight := record("prd-b", "prd", "/shop/web", "shop/web", "1.0", v1, t0)
	inFlight.LastDeployment = &inventory.Deployment{ToImage: "registry.prd/shop/web:2.0", Outcome: inventory.InProgress, At: t0}
	drifted := record("tst-a", "tst", "/shop/api", "shop/api", "3.1", api, t0)
	drifted.Drift = "registry.tst/shop/api:hotfix"
	return []inventory.Record{
		record("dev-a", "dev", "/shop/web", "shop/web", "2.0", v2, t0.Add(time.Hour)),
		record("tst-a", "tst", "/shop/web", "shop/web", "2.0", v2, t0.Add(time.Hour)),
		record("prd-a", "prd", "/shop/web", "shop/web", "1.0", v1, t0),
		inFlight,
		record("dev-a", "dev", "/shop/api", "shop/api", "3.1", api, t0),
		drifted,
		record("prd-a", "prd", "/shop/api", "shop/api", "3.1", api, t0),
		record("dev-a", "dev", "/tools/copy", "tools/copy", "0.9", imageDigest(4), t0),
	}
}

// servedMatrix serves records in dev, tst and prd and returns the
// console's URL and its /api/matrix.
func servedMatrix(t *testing.T, records ...inventory.Record) (string, matrixView) {
	t.Helper()
	rig := newNATSRig(t)
	seed(t, rig, records...)
	hs, _ := viewsServer(t, threeEnvs(), rig)
	var m matrixView
	getJSON(t, hs.URL+"/api/matrix", &m)
	return hs.URL, m
}

func TestMatrixShowsWhatEachEnvironmentRunsAndWhatALaterOneLacks(t *testing.T) {
	base, m := servedMatrix(t, shopRecords()...)
	if got := len(m.Envs); got != 3 || m.Envs[0].Name != "dev" || m.Envs[2].Name != "prd" || len(m.Envs[2].Clusters) != 2 {
		t.Fatalf("columns %+v; want dev, tst, prd (prd-a, prd-b) in the file's order", m.Envs)
	}
	if m.Workloads != 3 || len(m.Groups) != 3 || m.Groups[0].Repository != "shop/api" {
		t.Fatalf("rows: %d workloads in %+v; want 3 grouped by repository", m.Workloads, m.Groups)
	}
	web := m.Groups[1].Rows[0]
	if len(web.Gaps) != 1 || web.Gaps[0] != (matrixGap{From: "tst", To: "prd", Tag: "2.0", Digest: imageDigest(2)}) {
		t.Errorf("shop/web gaps %+v; want tst's 2.0 lacking in prd", web.Gaps)
	}
	if c := web.Cells[3]; c == nil || c.InFlight != "registry.prd/shop/web:2.0" || c.Gap == nil {
		t.Errorf("prd-b's cell %+v; want the deployment in flight and the gap", c)
	}
	api := m.Groups[0].Rows[0]
	if len(api.Gaps) != 0 || api.Cells[1].Drift == "" || api.Cells[3] != nil {
		t.Errorf("shop/api %+v; want no gap, drift in tst, nothing on prd-b", api)
	}
	if tools := m.Groups[2].Rows[0]; len(tools.Gaps) != 0 {
		t.Errorf("a workload of dev only has gaps %+v", tools.Gaps)
	}

	resp, body := get(t, base+"/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %s", resp.Status)
	}
	for _, want := range []string{
		`<a href="/images/` + imageDigest(2) + `"><span class="tag">2.0</span> <code>` + shortDigest(imageDigest(2)) + `</code></a>`,
		`in tst, not in prd: 2.0`,
		`<tr class="gap">`,
		`<span class="badge inflight"`,
		`<span class="badge drift"`,
		`2/2 healthy`,
		`<th class="group" scope="rowgroup" colspan="99">tools/copy</th>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the matrix page lacks %s", want)
		}
	}
}

// perEnvRecords: apps/web under a path of each environment, as Marathon
// installations name apps (/dev/web, /tst/web, /prd/web): tst runs 2.0,
// prd still 1.0 on both its clusters.
func perEnvRecords() []inventory.Record {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	return []inventory.Record{
		record("dev-a", "dev", "/dev/web", "apps/web", "2.0", imageDigest(2), t0.Add(time.Hour)),
		record("tst-a", "tst", "/tst/web", "apps/web", "2.0", imageDigest(2), t0.Add(time.Hour)),
		record("prd-a", "prd", "/prd/web", "apps/web", "1.0", imageDigest(1), t0),
		record("prd-b", "prd", "/prd/web", "apps/web", "1.0", imageDigest(1), t0),
	}
}

func TestMatrixShowsAnApplicationWithADifferentIdPerEnvironmentAsOneRow(t *testing.T) {
	base, m := servedMatrix(t, perEnvRecords()...)
	if m.Workloads != 1 || len(m.Groups) != 1 || len(m.Groups[0].Rows) != 1 {
		t.Fatalf("%d rows in %+v; want apps/web as one row", m.Workloads, m.Groups)
	}
	web := m.Groups[0].Rows[0]
	if web.Name != "web" {
		t.Errorf("the row is %q; want web, the name the ids share", web.Name)
	}
	for i, want := range []string{"/dev/web", "/tst/web", "/prd/web", "/prd/web"} {
		if c := web.Cells[i]; c == nil || c.AppID != want {
			t.Errorf("cell %d: %+v; want workload %s", i, c, want)
		}
	}
	if len(web.Gaps) != 1 || web.Gaps[0] != (matrixGap{From: "tst", To: "prd", Tag: "2.0", Digest: imageDigest(2)}) || m.Gaps != 1 {
		t.Errorf("gaps %+v (%d rows); want tst's 2.0 lacking in prd", web.Gaps, m.Gaps)
	}
	if web.Cells[2].Gap == nil || web.Cells[3].Gap == nil || web.Cells[1].Gap != nil {
		t.Errorf("the gap marks %v %v %v; want prd's cells only", web.Cells[1].Gap, web.Cells[2].Gap, web.Cells[3].Gap)
	}

	_, body := get(t, base+"/")
	for _, want := range []string{
		`<tr class="gap">`,
		`<th scope="row">web<br><span class="gap-note">in tst, not in prd: 2.0`,
		`data-cell="tst-a /tst/web">`,
		`<span class="workload-id">/prd/web</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the matrix page lacks %s", want)
		}
	}
}

// asListed is records as the inventory bucket returns them: with the
// image's parts (record's images are registry.ENV/REPO:TAG).
func asListed(records ...inventory.Record) []inventory.Record {
	for i, r := range records {
		ref, tag, _ := strings.Cut(r.Image, ":")
		records[i].Registry, records[i].Tag = "registry."+r.Environment, tag
		records[i].Repository = strings.TrimPrefix(ref, records[i].Registry+"/")
		records[i].Managed = true
	}
	return records
}

func TestMatrixKeepsTwoWorkloadsOfOneClusterWithTheSameNameApart(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	records := append(perEnvRecords(),
		// Two teams run apps/api under the same name in dev, one of them
		// in tst too; prd's is a Docker container named api.
		record("dev-a", "dev", "/team-a/api", "apps/api", "3.0", imageDigest(3), t0),
		record("dev-a", "dev", "/team-b/api", "apps/api", "3.1", imageDigest(4), t0),
		record("tst-a", "tst", "/team-a/api", "apps/api", "3.0", imageDigest(3), t0),
		record("prd-a", "prd", "api", "apps/api", "3.0", imageDigest(3), t0),
	)
	envs := []matrixEnv{{Name: "dev", Clusters: []string{"dev-a"}}, {Name: "tst", Clusters: []string{"tst-a"}}, {Name: "prd", Clusters: []string{"prd-a", "prd-b"}}}
	m := buildMatrix(envs, asListed(records...), nil)
	if len(m.Groups) != 2 || m.Groups[0].Repository != "apps/api" {
		t.Fatalf("groups %+v; want apps/api and apps/web", m.Groups)
	}
	var names []string
	for _, r := range m.Groups[0].Rows {
		names = append(names, r.Name)
	}
	if strings.Join(names, " ") != "/team-a/api /team-b/api api" {
		t.Fatalf("apps/api rows %q; want /team-a/api and /team-b/api apart, by their ids, and prd's api", names)
	}
	teamA := m.Groups[0].Rows[0]
	if teamA.Cells[0] == nil || teamA.Cells[0].AppID != "/team-a/api" || teamA.Cells[1] == nil || teamA.Cells[2] != nil {
		t.Errorf("/team-a/api %+v; want its dev and tst cells, in one row", teamA.Cells)
	}
	if teamB := m.Groups[0].Rows[1]; teamB.Cells[0] == nil || teamB.Cells[0].AppID != "/team-b/api" || teamB.Cells[1] != nil {
		t.Errorf("/team-b/api %+v; want its dev cell alone", teamB.Cells)
	}
	if m.Workloads != 4 {
		t.Errorf("%d rows; want 4", m.Workloads)
	}
}

func TestMatrixGapCountsACellOfUnknownDigestByItsTag(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	envs := []matrixEnv{{Name: "dev", Clusters: []string{"dev-a"}}, {Name: "tst", Clusters: []string{"tst-a"}}}
	for _, tc := range []struct {
		name, tstTag string
		gap          bool
	}{
		{"an older tag is a gap", "1.0", true},
		{"the same tag may be the same image", "2.0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tst := record("tst-a", "tst", "/tst/web", "apps/web", tc.tstTag, "", t0)
			m := buildMatrix(envs, asListed(record("dev-a", "dev", "/dev/web", "apps/web", "2.0", imageDigest(2), t0), tst), nil)
			row := m.Groups[0].Rows[0]
			if got := len(row.Gaps) == 1 && row.Cells[1].Gap != nil; got != tc.gap {
				t.Errorf("tst running %s of unknown digest: gaps %+v; want a gap: %v", tc.tstTag, row.Gaps, tc.gap)
			}
		})
	}
}

func TestMatrixFiltersByEnvironmentAndRepositoryWithoutScript(t *testing.T) {
	rig := newNATSRig(t)
	seed(t, rig, shopRecords()...)
	hs, _ := viewsServer(t, threeEnvs(), rig)

	var m matrixView
	getJSON(t, hs.URL+"/api/matrix?env=dev&repository=shop/**", &m)
	if len(m.Envs) != 1 || m.Envs[0].Name != "dev" || m.Workloads != 2 {
		t.Fatalf("env=dev, repository=shop/**: %d workloads in %+v; want shop/api and shop/web of dev", m.Workloads, m.Envs)
	}
	_, body := get(t, hs.URL+"/?env=tst")
	if !strings.Contains(body, `<option selected>tst</option>`) || strings.Contains(body, "prd-a") {
		t.Error("the page filtered by env=tst does not keep the choice or still shows prd's clusters")
	}
	if resp, _ := get(t, hs.URL+"/?repository=apps/[a"); resp.StatusCode != 400 {
		t.Errorf("a broken glob: %s; want 400", resp.Status)
	}
}

func TestMatrixCountsComplianceViolations(t *testing.T) {
	rig := newNATSRig(t)
	seed(t, rig, shopRecords()...)
	st, err := compliance.Open(t.Context(), rig.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Create(t.Context(), compliance.Violation{Cluster: "prd-a", Environment: "prd", AppID: "/shop/web",
		Rule: "signed", Kind: "referrers", Detail: "no signature", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hs, _ := viewsServer(t, threeEnvs(), rig)
	_, body := get(t, hs.URL+"/")
	if !strings.Contains(body, `<span class="badge violation" title="no signature">signed</span>`) {
		t.Error("the matrix does not flag prd-a's shop/web as breaking rule signed")
	}
}

func TestInventorySearchFiltersAsTheCLIAndExportsSafeCSV(t *testing.T) {
	rig := newNATSRig(t)
	recs := shopRecords()
	evil := record("dev-a", "dev", "/evil", "shop/evil", "1", imageDigest(9), time.Now())
	evil.Image = "=HYPERLINK(\"http://x\")"
	evil.Refused = &inventory.Refusal{Image: "registry.dev/shop/evil:2", Actor: "@mallory", At: time.Now()}
	seed(t, rig, append(recs, evil)...)
	hs, _ := viewsServer(t, threeEnvs(), rig)

	var v inventoryView
	getJSON(t, hs.URL+"/api/inventory?digest="+strings.TrimPrefix(imageDigest(2), "sha256:")[:12], &v)
	if len(v.Records) != 2 || v.Records[0].Cluster != "dev-a" || v.Records[1].Cluster != "tst-a" {
		t.Errorf("digest prefix: %+v; want shop/web of dev-a and tst-a", v.Records)
	}
	getJSON(t, hs.URL+"/api/inventory?node=node-prd&image=shop/web", &v)
	if len(v.Records) != 2 || v.Records[0].Environment != "prd" {
		t.Errorf("node node-prd, image shop/web: %+v; want prd's two shop/web", v.Records)
	}
	// The drifted workload is found by what it runs by hand, as status finds it.
	getJSON(t, hs.URL+"/api/inventory?image=shop/api:hotfix", &v)
	if len(v.Records) != 1 || v.Records[0].Cluster != "tst-a" {
		t.Errorf("image shop/api:hotfix: %+v; want the drifted tst-a", v.Records)
	}

	resp, body := get(t, hs.URL+"/inventory?format=csv&env=dev")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("Content-Type %q", ct)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[0][0] != "environment" {
		t.Fatalf("CSV of dev: %d rows %v; want a header and 4 workloads", len(rows), rows)
	}
	for _, row := range rows[1:] {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("CSV cell %q could be taken for a formula", cell)
			}
		}
	}
	if !strings.Contains(body, `'=HYPERLINK`) || !strings.Contains(body, `'@mallory`) {
		t.Errorf("the formula-like cells are not prefixed with an apostrophe:\n%s", body)
	}

	_, page := get(t, hs.URL+"/inventory?cluster=tst-a")
	if !strings.Contains(page, "2 of 9 workloads") || !strings.Contains(page, `href="/inventory?cluster=tst-a&amp;format=csv"`) {
		t.Errorf("the search page lacks its count or its CSV link:\n%s", page)
	}
}

func TestImagePageTimelineFollowsCausationBothWays(t *testing.T) {
	rig := newNATSRig(t)
	d := imageDigest(7)
	seed(t, rig, record("dev-a", "dev", "/shop/web", "shop/web", "2.0", d, time.Now()))
	hs, _ := viewsServer(t, threeEnvs(), rig)

	push := rig.push(t, "dev", "shop/web", "2.0", d)
	// What the push caused names no digest: only causationid ties it.
	deployed := rig.publish(t, events.Spec{ID: "deployed-1", Type: events.TypeDeploymentSucceeded, Source: "/test",
		Environment: "dev", Subject: "dev-a:/shop/web", CausationID: push.ID(), Data: map[string]string{"cluster": "dev-a"}})
	notified := rig.publish(t, events.Spec{ID: "notified-1", Type: events.TypeNotificationFailed, Source: "/test",
		Environment: "dev", Subject: "slack", CausationID: deployed.ID(), Data: map[string]string{"channel": "slack"}})
	// A manual action caused an event about the digest: its cause is on
	// the timeline too.
	action := rig.publish(t, events.Spec{ID: "action-1", Type: events.TypeActionRequested, Source: "/test",
		Environment: "tst", Subject: "redeploy", Data: map[string]string{"action": "redeploy", "actor": "alice"}})
	started := rig.publish(t, events.Spec{ID: "started-1", Type: events.TypeDeploymentStarted, Source: "/test",
		Environment: "tst", Subject: "tst-a:/shop/web", CausationID: action.ID(), Data: map[string]string{"digest": d}})
	unrelated := rig.publish(t, events.Spec{ID: "unrelated-1", Type: events.TypeDeploymentSucceeded, Source: "/test",
		Environment: "dev", Subject: "dev-a:/other", Data: map[string]string{"cluster": "dev-a"}})
	_ = unrelated

	var v imageView
	eventually(t, "the image page shows the notification two causes away", func() bool {
		getJSON(t, hs.URL+"/api/images/"+d, &v)
		return len(v.Timeline) >= 5
	})
	ids := map[string]timelineEntry{}
	for _, e := range v.Timeline {
		ids[e.ID] = e
	}
	for _, want := range []events.Event{push, deployed, notified, action, started} {
		if _, ok := ids[want.ID()]; !ok {
			t.Errorf("the timeline lacks %s (%s)", want.ID(), want.Type())
		}
	}
	if _, ok := ids["unrelated-1"]; ok {
		t.Error("the timeline shows an event neither about the image nor caused by one")
	}
	if !ids["notified-1"].Caused || ids[push.ID()].Caused {
		t.Errorf("caused flags: notification %v, push %v; want the notification under its cause", ids["notified-1"].Caused, ids[push.ID()].Caused)
	}
	if len(v.Runs) != 1 || v.Runs[0].Cluster != "dev-a" {
		t.Errorf("where it runs: %+v", v.Runs)
	}
	// registry.dev does not answer: the page still renders and says so.
	if len(v.Referrers) != 1 || v.Referrers[0].Unavailable == "" {
		t.Errorf("referrers %+v; want registry.dev shown unavailable", v.Referrers)
	}
	resp, body := get(t, hs.URL+"/images/"+d)
	if resp.StatusCode != 200 || !strings.Contains(body, `<li id="ev-notified-1" class="caused">`) || !strings.Contains(body, "unavailable") {
		t.Errorf("the image page: %s\n%s", resp.Status, body)
	}
	if resp, _ := get(t, hs.URL+"/images/"+imageDigest(99)); resp.StatusCode != 404 {
		t.Errorf("an unknown image: %s; want 404", resp.Status)
	}
}

// devOnly lets the console's anonymous user view dev alone, as a role
// would an OIDC user.
func devOnly(s *server) {
	cfg := *s.cfg
	cfg.Roles = []config.Role{{User: "anonymous", Environments: []string{"dev"}, Can: []string{"view"}}}
	s.policy = access.New(&cfg)
}

func TestADevOnlyUserNeverSeesPrd(t *testing.T) {
	rig := newNATSRig(t)
	seed(t, rig, shopRecords()...)
	prdOnly := imageDigest(1) // shop/web 1.0 runs in prd alone
	hs, s := viewsServer(t, threeEnvs(), rig)
	rig.push(t, "prd", "shop/web", "1.0", prdOnly)
	eventually(t, "the prd push is in the recent events", func() bool { return len(s.recent.ByDigest(prdOnly)) > 0 })
	devOnly(s)

	for _, path := range []string{"/", "/api/matrix", "/inventory", "/api/inventory", "/inventory?format=csv", "/images/" + imageDigest(2), "/api/images/" + imageDigest(2)} {
		resp, body := get(t, hs.URL+path)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		for _, hidden := range []string{"prd", "tst-a", shortDigest(prdOnly)} {
			if strings.Contains(body, hidden) {
				t.Errorf("GET %s shows %q to a dev-only user", path, hidden)
			}
		}
	}
	for _, path := range []string{"/images/" + prdOnly, "/api/images/" + prdOnly} {
		if resp, _ := get(t, hs.URL+path); resp.StatusCode != 404 {
			t.Errorf("GET %s of an image of prd alone: %s; want 404", path, resp.Status)
		}
	}
}

func TestViewsEscapeWhatTheyShow(t *testing.T) {
	rig := newNATSRig(t)
	evil := `<script>alert(1)</script>`
	r := record("dev-a", "dev", "/x", "shop/"+evil, "t"+evil, imageDigest(5), time.Now())
	r.Image = "registry.dev/shop/" + evil + ":t" + evil
	r.Repository, r.Tag = "shop/"+evil, "t"+evil
	r.Refused = &inventory.Refusal{Image: "registry.dev/x", Actor: evil, At: time.Now()}
	seed(t, rig, r)
	hs, _ := viewsServer(t, threeEnvs(), rig)
	rig.publish(t, events.Spec{ID: "evil-1", Type: events.TypeActionRequested, Source: "/test", Environment: "dev",
		Subject: evil, Data: map[string]string{"actor": evil, "digest": imageDigest(5)}})
	eventually(t, "the event is on the image page", func() bool {
		_, body := get(t, hs.URL+"/images/"+imageDigest(5))
		return strings.Contains(body, "evil-1")
	})
	for _, path := range []string{"/", "/inventory", "/images/" + imageDigest(5)} {
		_, body := get(t, hs.URL+path)
		if strings.Contains(body, "<script>alert") {
			t.Errorf("GET %s writes a payload's markup unescaped", path)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the name at all", path)
		}
	}
}
