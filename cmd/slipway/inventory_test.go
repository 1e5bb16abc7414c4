package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// inventoryApp is a Marathon app definition with instances of image.
func inventoryApp(id, image string, instances int, labels map[string]string) string {
	l, _ := json.Marshal(labels)
	return fmt.Sprintf(`{"id":%q,"instances":%d,"labels":%s,"container":{"type":"DOCKER","docker":{"image":%q}}}`, id, instances, l, image)
}

// TestInventoryRecordsEveryWorkloadForTheAuditor: two environments, each
// with its registry and a Marathon cluster. dev runs a managed app on
// three hosts, an app without the label that runs the same tag, a managed
// app Slipway then deploys from an approved promotion, and an app of a
// registry nobody configured; prd runs the same image as dev's web. The
// inventory has every one of them, managed or not, with its digest (the
// tag-only ones resolved from the real registry; the unconfigured registry
// never asked), nodes and last deployment; status prints it as JSON, CSV
// and filtered, and where finds a digest in both environments.
func TestInventoryRecordsEveryWorkloadForTheAuditor(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	dev := testkit.NewRegistry(t, testkit.RegistryOptions{})
	prd := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	testkit.PushImage(t, prd.Host+"/apps/web:1.0.0", img)
	webDigest := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")
	testkit.PushRandomImage(t, dev.Host+"/apps/api:1.0.0")
	testkit.PushRandomImage(t, dev.Host+"/apps/api:1.1.0")
	apiDigest := testkit.Digest(t, dev.Host+"/apps/api:1.1.0")

	var spied atomic.Int64
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spied.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(spy.Close)
	foreign := strings.TrimPrefix(spy.URL, "http://") + "/vendor/agent:7.1"

	devMarathon, prdMarathon := startMarathon(t), startMarathon(t)
	devMarathon.load(t,
		inventoryApp("/shop/web", dev.Host+"/apps/web:1.0.0", 3, map[string]string{"slipway.policy": "all"}),
		inventoryApp("/shop/api", dev.Host+"/apps/api:1.0.0", 1, map[string]string{"slipway.policy": "all"}),
		inventoryApp("/tools/copy", dev.Host+"/apps/web:1.0.0", 1, nil),
		inventoryApp("/tools/agent", foreign, 2, nil))
	prdMarathon.load(t, inventoryApp("/shop/web", prd.Host+"/apps/web:1.0.0", 2, map[string]string{"slipway.policy": "patch"}))

	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
clusters:
  - { name: mar-dev, environment: dev, marathon: { url: %q, auth: { none: true } } }
  - { name: mar-prd, environment: prd, marathon: { url: %q, auth: { none: true } } }
deployer: { reconcileInterval: 100ms, pollInterval: 100ms }
ops: { listen: "off" }
`, ns.URL, dev.Host, prd.Host, devMarathon.url, prdMarathon.url)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	runService(t, cfg, deployer.New())

	// An approved promotion brings api 1.1.0 into dev.
	to := events.ImageRef{Environment: "dev", Registry: dev.Host, Repository: "apps/api", Tag: "1.1.0", Digest: apiDigest}
	promoted, err := events.New(t.Context(), events.Spec{
		ID: events.ID("promoted", to.String()), Type: events.TypeImagePromoted, Source: "/slipway/promoter",
		Environment: "dev", Subject: to.String(),
		Data: events.ImagePromoted{Promotion: "ci-to-dev", From: to, To: to, ApprovalID: "apr-42", ApprovedBy: "rm"},
	})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the deployer's consumers", func() bool {
		_, err := js.Consumer(t.Context(), bus.DefaultStream, deployer.ConsumerName("mar-dev"))
		return err == nil
	})
	if _, err := bus.NewPublisher(js, "").Publish(t.Context(), promoted); err != nil {
		t.Fatal(err)
	}

	var inv *inventory.Store
	testkit.WaitFor(t, "the inventory bucket", func() bool { inv, err = inventory.Bind(t.Context(), js); return err == nil })
	byID := map[string]inventory.Record{}
	testkit.WaitFor(t, "every workload recorded, digests resolved, the deployment ended", func() bool {
		rs, err := inv.List(t.Context())
		if err != nil || len(rs) != 5 {
			return false
		}
		for _, r := range rs {
			byID[r.Cluster+r.AppID] = r
		}
		api := byID["mar-dev/shop/api"]
		return byID["mar-dev/tools/copy"].Digest != "" && byID["mar-dev/shop/web"].Digest != "" &&
			byID["mar-prd/shop/web"].Digest != "" && byID["mar-dev/tools/agent"].DigestReason != "" &&
			api.LastDeployment != nil && api.LastDeployment.Outcome == inventory.Succeeded
	})

	// status --json: every field, by the names scripts use.
	out, errOut, code := runCLI(t, t.Context(), "status", "--nats", ns.URL, "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d, %s", code, errOut)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw) != 5 {
		t.Fatalf("status --json: %v, %d records\n%s", err, len(raw), out)
	}
	for _, r := range raw {
		for _, k := range []string{"cluster", "environment", "appId", "managed", "image", "registry", "repository", "tag",
			"digest", "policy", "platform", "nodes", "wanted", "running", "healthy", "updatedAt"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s %s has no %q", r["cluster"], r["appId"], k)
			}
		}
	}
	var last map[string]any
	for _, r := range raw {
		if r["cluster"] == "mar-dev" && r["appId"] == "/shop/api" {
			last, _ = r["lastDeployment"].(map[string]any)
		}
	}
	for k, want := range map[string]string{"toImage": dev.Host + "/apps/api:1.1.0", "outcome": "succeeded", "causeId": promoted.ID(),
		"approvalId": "apr-42", "approver": "rm"} {
		if got, _ := last[k].(string); !strings.HasPrefix(got, want) {
			t.Errorf("lastDeployment.%s = %q, want %q (%v)", k, got, want, last)
		}
	}
	if id, _ := last["eventId"].(string); id == "" || last["at"] == nil {
		t.Errorf("lastDeployment has no eventId or at: %v", last)
	}

	web, cp, agent := byID["mar-dev/shop/web"], byID["mar-dev/tools/copy"], byID["mar-dev/tools/agent"]
	if !web.Managed || web.Policy != "all" || web.Digest != webDigest || web.Repository != "apps/web" || web.Tag != "1.0.0" {
		t.Errorf("dev web: %+v, want managed, policy all, apps/web 1.0.0 at %s", web, webDigest)
	}
	if web.Running != 3 || len(web.Nodes) < 2 {
		t.Errorf("dev web: %d running on %v, want 3 on several hosts", web.Running, web.Nodes)
	}
	if cp.Managed || cp.Policy != "" || cp.Digest != webDigest {
		t.Errorf("the unlabelled app: %+v, want unmanaged, no policy, digest %s resolved from the registry", cp, webDigest)
	}
	if agent.Managed || agent.Digest != "" || !strings.Contains(agent.DigestReason, "not a configured") {
		t.Errorf("the app of an unconfigured registry: %+v, want unmanaged, no digest and why", agent)
	}
	if n := spied.Load(); n != 0 {
		t.Errorf("the unconfigured registry got %d requests, want 0", n)
	}

	// CSV: a header, one row per workload, nodes joined with ';'.
	out, _, code = runCLI(t, t.Context(), "status", "--nats", ns.URL, "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 6 {
		t.Fatalf("--format csv: exit %d, %v, %d rows\n%s", code, err, len(rows), out)
	}
	if !slices.Equal(rows[0], csvHeader) {
		t.Errorf("CSV header %v", rows[0])
	}
	col := func(name string) int { return slices.Index(rows[0], name) }
	for _, row := range rows[1:] {
		if row[col("cluster")] == "mar-dev" && row[col("appId")] == "/shop/web" && row[col("nodes")] != strings.Join(web.Nodes, ";") {
			t.Errorf("CSV nodes %q, want %q", row[col("nodes")], strings.Join(web.Nodes, ";"))
		}
	}

	// Filters narrow to what they name.
	node := strings.SplitN(web.Nodes[0], ".", 2)[0]
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--env", "prd"}, []string{"mar-prd/shop/web"}},
		{[]string{"--cluster", "mar-dev"}, []string{"mar-dev/shop/api", "mar-dev/shop/web", "mar-dev/tools/agent", "mar-dev/tools/copy"}},
		{[]string{"--unmanaged"}, []string{"mar-dev/tools/agent", "mar-dev/tools/copy"}},
		{[]string{"--digest", strings.TrimPrefix(webDigest, "sha256:")[:10]}, []string{"mar-dev/shop/web", "mar-dev/tools/copy", "mar-prd/shop/web"}},
		{[]string{"--image", "vendor/agent"}, []string{"mar-dev/tools/agent"}},
		{[]string{"--repository", "apps/w*"}, []string{"mar-dev/shop/web", "mar-dev/tools/copy", "mar-prd/shop/web"}},
		{[]string{"--drift"}, nil},
	} {
		out, errOut, code := runCLI(t, t.Context(), append([]string{"status", "--nats", ns.URL, "--format", "json"}, tc.args...)...)
		if got := placesOf(t, out); code != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("status %v: exit %d %s, %v; want %v", tc.args, code, errOut, got, tc.want)
		}
	}
	out, _, _ = runCLI(t, t.Context(), "status", "--nats", ns.URL, "--json", "--node", node)
	for _, p := range placesOf(t, out) {
		if r := byID[p]; !slices.ContainsFunc(r.Nodes, func(n string) bool { return n == node || strings.HasPrefix(n, node+".") }) {
			t.Errorf("--node %s lists %s on %v", node, p, r.Nodes)
		}
	}
	if !slices.Contains(placesOf(t, out), "mar-dev/shop/web") {
		t.Errorf("--node %s misses dev web on %v", node, web.Nodes)
	}

	// where: by digest, and by a tag-only reference, in both environments.
	for _, what := range []string{webDigest, dev.Host + "/apps/web:1.0.0"} {
		out, errOut, code := runCLI(t, t.Context(), "where", what, "--nats", ns.URL, "--format", "json")
		if got, want := placesOf(t, out), []string{"mar-dev/shop/web", "mar-dev/tools/copy", "mar-prd/shop/web"}; code != 0 || !slices.Equal(got, want) {
			t.Errorf("where %s: exit %d %s, %v; want %v", what, code, errOut, got, want)
		}
	}
	if _, errOut, code := runCLI(t, t.Context(), "where", "sha256:"+strings.Repeat("0", 64), "--nats", ns.URL); code != 1 || !strings.Contains(errOut, "no workload runs") {
		t.Errorf("where of a digest nothing runs: exit %d, %q; want 1 and why", code, errOut)
	}
	if table, _, code := runCLI(t, t.Context(), "where", webDigest[:19], "--nats", ns.URL); code != 0 || !strings.Contains(table, "prd") || !strings.Contains(table, "/tools/copy") {
		t.Errorf("where table: exit %d\n%s", code, table)
	}
}

// A managed workload changed by hand runs another digest than the one its
// record expects: where and status --digest/--image/--repository find it
// by the digest and image it runs by hand (as well as by the expected
// ones), and say it runs them by hand.
func TestWhereFindsADriftedWorkloadByTheDigestItRunsByHand(t *testing.T) {
	expected, byHand := "sha256:"+strings.Repeat("e", 64), "sha256:"+strings.Repeat("a", 64)
	other := "sha256:" + strings.Repeat("c", 64)
	ns := withInventory(t,
		inventory.Record{Cluster: "mar-prd", Environment: "prd", AppID: "/shop/web", Image: "registry.prd.example/apps/web:1.4.0",
			Digest: expected, Policy: "all", Drift: "registry.int.example/tools/debug:latest", DriftDigest: byHand},
		inventory.Record{Cluster: "mar-int", Environment: "int", AppID: "/tools/debug", Image: "registry.int.example/tools/debug@" + byHand},
		inventory.Record{Cluster: "mar-int", Environment: "int", AppID: "/shop/web", Image: "registry.int.example/apps/web:1.5.0",
			Digest: other, Policy: "all"},
	)
	both := []string{"mar-int/tools/debug", "mar-prd/shop/web"}
	for _, what := range []string{byHand, byHand[7:19], "registry.int.example/tools/debug:latest"} {
		out, errOut, code := runCLI(t, t.Context(), "where", what, "--nats", ns.URL, "--format", "json")
		if got := placesOf(t, out); code != 0 || !slices.Equal(got, both) {
			t.Errorf("where %s: exit %d %s, %v; want %v", what, code, errOut, got, both)
		}
	}
	if out, _, code := runCLI(t, t.Context(), "where", expected, "--nats", ns.URL, "--format", "json"); code != 0 ||
		!slices.Equal(placesOf(t, out), []string{"mar-prd/shop/web"}) {
		t.Errorf("where of the expected digest: exit %d\n%s; want the drifted workload, flagged", code, out)
	}

	table, errOut, code := runCLI(t, t.Context(), "where", byHand, "--nats", ns.URL)
	if code != 0 {
		t.Fatalf("where table: exit %d %s", code, errOut)
	}
	for _, row := range tableRows(t, table) {
		drifted := row["CLUSTER"] == "mar-prd"
		if note := row["NOTE"]; drifted != strings.Contains(note, "by hand") ||
			drifted && !strings.Contains(note, "registry.int.example/tools/debug:latest ("+byHand[7:19]+")") {
			t.Errorf("where table, %s%s: NOTE %q; want the drift marked with the image and digest run by hand only there\n%s",
				row["CLUSTER"], row["APP"], note, table)
		}
	}

	for _, tc := range []struct {
		filter []string
		want   []string
	}{
		{[]string{"--digest", byHand}, both},
		{[]string{"--image", "registry.int.example/tools/debug:latest"}, []string{"mar-prd/shop/web"}}, // the other names no tag
		{[]string{"--repository", "tools/**"}, both},
	} {
		filter := tc.filter
		out, errOut, code := runCLI(t, t.Context(), append([]string{"status", "--nats", ns.URL, "--format", "json"}, filter...)...)
		if got := placesOf(t, out); code != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("status %v: exit %d %s, %v; want %v", filter, code, errOut, got, tc.want)
		}
		if filter[0] == "--digest" && !strings.Contains(out, `"driftDigest": "`+byHand+`"`) {
			t.Errorf("status %v --format json carries no driftDigest:\n%s", filter, out)
		}
	}
}

// placesOf reads cluster+appId of the records of a JSON answer, sorted.
func placesOf(t *testing.T, out string) []string {
	t.Helper()
	var rs []inventory.Record
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Errorf("JSON: %v\n%s", err, out)
		return nil
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Cluster+r.AppID)
	}
	slices.Sort(got)
	return got
}

// TestStatusAndWhereUsageErrorsExitTwo: wrong flags and arguments are
// usage errors.
func TestStatusAndWhereUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--format", "xml"},
		{"status", "--json", "--format", "csv"},
		{"status", "--repository", "apps/[a"},
		{"where"},
		{"where", "a", "b"},
		{"where", "x", "--format", "csv"},
	} {
		if out, errOut, code := runCLI(t, t.Context(), args...); code != 2 || out != "" || !strings.Contains(errOut, "--help") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and a hint", args, code, out, errOut)
		}
	}
}
