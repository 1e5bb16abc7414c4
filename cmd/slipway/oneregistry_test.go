package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/compliance"
	"github.com/slipway-cd/slipway/services/promoter"
)

// oneRegistryConfig is the configuration of docs/guides/one-registry.md:
// one registry serves the integration and the production stage; its
// webhook routes each push to one of them by tag; integration builds are
// retagged for production once approved; production deploys only what a
// promotion brought, and the integration cluster only integration builds.
// The guide shows the same file with real host names; keep them in step.
const oneRegistryConfig = `
nats: { url: %[1]q }
environments:
  - name: int
    registry: { host: %[2]q, insecure: true, username: ci, password: %[3]q }
  - name: prd
    registry: { host: %[2]q, insecure: true, username: ci, password: %[3]q }
    accept: promoted
ingest:
  listen: %[4]q
  sources:
    - name: shared-registry
      format: distribution
      auth: { none: true }
      routes:
        - { repositories: ["**"], tags: { regex: '.*-integration' }, environment: int }
        - { repositories: ["**"], tags: { regex: '.*-rc\.[0-9]+' }, environment: int }
        - { repositories: ["**"], tags: { semver: ">=0.0.0" }, environment: prd }
promotions:
  - name: int-to-prd
    from: int
    to: prd
    repositories: ["**"]
    tags: { regex: '[0-9]+\.[0-9]+\.[0-9]+-integration' }
    targetTag: '{{ .Tag | trimSuffix "-integration" }}'
    approval: { required: true, approvers: [alice], timeout: 72h }
approvers:
  - { name: alice, token: alice-t0ken }
clusters:
  - name: azure-int
    environment: int
    marathon: { url: %[5]q }
    deploy: { only: { tags: { regex: '.*-integration' } } }
  - name: vsphere-prd
    environment: prd
    marathon: { url: %[6]q }
compliance:
  - { name: own-registry, environments: [prd], rule: ownRegistry }
  - { name: promoted-only, environments: [prd], rule: promoted }
  - { name: pinned, environments: [prd], rule: pinnedDigest }
deployer: { pollInterval: 100ms, reconcileInterval: 200ms }
ops: { listen: "off" }
`

// TestOneRegistryServesIntegrationAndProduction is the story of one shared
// registry for two stages, with real parts: a Distribution registry that
// notifies ingest, the promoter and the deployer, two emulated Marathons.
// An integration build deploys to the integration cluster only; its
// approved promotion retags it in the same repository and only then
// deploys to production; a release tag pushed straight into the registry
// is refused in production, naming who pushed it; the history of the
// production app names the approver; and when someone puts that release
// tag on the production app by hand, the drift and the broken compliance
// rules are reported.
func TestOneRegistryServesIntegrationAndProduction(t *testing.T) {
	ns := testkit.NATS(t)
	// The registry needs ingest's address, and ingest the registry's host
	// (it refuses pushes of any other registry): take the address first.
	addr := testkit.FreeAddr(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{
		NotifyURL: "http://" + addr + "/webhooks/shared-registry",
		Username:  "ci", Password: "ci-pa55",
	})
	azure, vsphere := startMarathon(t), startMarathon(t)
	orders := reg.Host + "/orders"
	app := func(id, image string) string {
		return fmt.Sprintf(`{"id":%q,"instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":%q}}}`, id, image)
	}
	azure.load(t, app("/int/orders", orders+":1.0.0-integration"))
	vsphere.load(t, app("/prd/orders", orders+":1.0.0"))

	cfg := parseConfig(t, fmt.Sprintf(oneRegistryConfig, ns.URL, reg.Host, reg.Password, addr, azure.url, vsphere.url))
	js, got := recordStream(t, ns, cfg, "slipway.>")
	base := startIngest(t, cfg)
	runService(t, cfg, promoter.New(), deployer.New())
	durables := []string{promoter.ConsumerName, deployer.ConsumerName("azure-int"), deployer.ConsumerName("vsphere-prd")}
	for _, c := range durables {
		testkit.WaitFor(t, "consumer "+c, func() bool {
			_, err := js.Consumer(t.Context(), bus.DefaultStream, c)
			return err == nil
		})
	}
	// settled waits until every service has handled every event so far,
	// so that what did not happen has had its chance to.
	settled := func() {
		t.Helper()
		testkit.WaitFor(t, "every consumer to handle every event", func() bool {
			return slices.IndexFunc(durables, func(c string) bool { return !consumerDone(t.Context(), js, c) }) < 0
		})
	}
	deploymentsOf := func(typ events.Type, cluster string) []events.Deployment {
		var out []events.Deployment
		for _, e := range got.Of(typ) {
			if d, _ := events.DataAs[events.Deployment](e); d.Cluster == cluster {
				out = append(out, d)
			}
		}
		return out
	}
	deployments := func(cluster string) []events.Deployment { return deploymentsOf(events.TypeDeploymentStarted, cluster) }
	// succeededOn waits for the first deployment that succeeded on the
	// cluster.
	succeededOn := func(cluster string) events.Deployment {
		t.Helper()
		testkit.WaitFor(t, "a deployment on "+cluster, func() bool { return len(deploymentsOf(events.TypeDeploymentSucceeded, cluster)) > 0 })
		return deploymentsOf(events.TypeDeploymentSucceeded, cluster)[0]
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := execute(t, t.Context(), args...)
		if err != nil {
			t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("$ slipway %s\n%s", strings.Join(args, " "), out)
		return out
	}

	// violations runs `slipway compliance --env prd --format json`, which
	// exits 1 when there is any, and before the first check.
	violations := func() []compliance.Violation {
		t.Helper()
		out, err := execute(t, t.Context(), "compliance", "--env", "prd", "--format", "json", "--nats", ns.URL)
		if errors.Is(err, errNotChecked) {
			return nil
		}
		var vs []compliance.Violation
		if jerr := json.Unmarshal([]byte(out), &vs); jerr != nil {
			t.Fatalf("slipway compliance: %v %v\n%s", err, jerr, out)
		}
		if (err != nil) != (len(vs) > 0) {
			t.Fatalf("slipway compliance listed %d violations and ended with %v", len(vs), err)
		}
		return vs
	}
	brokenRules := func(vs []compliance.Violation) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Cluster+":"+v.AppID+":"+v.Rule)
		}
		slices.Sort(out)
		return out
	}
	// prd starts on an image no promotion brought, by tag: an auditor's
	// first finding.
	testkit.WaitFor(t, "the first compliance check of prd", func() bool { return len(violations()) > 0 })
	if got := brokenRules(violations()); !slices.Contains(got, "vsphere-prd:/prd/orders:pinned") {
		t.Errorf("before any release, prd breaks %v, want pinned among them", got)
	}

	// (a) An integration build: routed to int, deployed on azure-int only;
	// its promotion to prd waits for an approver.
	testkit.PushRandomImage(t, orders+":1.1.0-integration")
	build := testkit.Digest(t, orders+":1.1.0-integration")
	pushed := got.Wait(t, events.TypeImagePushed, 1)
	if p, _ := events.DataAs[events.ImagePushed](pushed[0]); p.Environment != "int" || p.Tag != "1.1.0-integration" {
		t.Fatalf("the integration build was announced as %+v, want in int", p)
	}
	if d := succeededOn("azure-int"); d.AppID != "/int/orders" {
		t.Fatalf("deployment %+v, want /int/orders on azure-int", d)
	}
	requested := got.Wait(t, events.TypeApprovalRequested, 1)
	ar, _ := events.DataAs[events.ApprovalRequested](requested[0])
	if ar.To.Environment != "prd" || ar.To.Tag != "1.1.0" || ar.To.Repository != "orders" || ar.To.Digest != build {
		t.Fatalf("approval asked for %+v, want orders:1.1.0 at %s in prd", ar.To, build)
	}
	settled()
	if img := azure.image(t, "/int/orders"); img != orders+":1.1.0-integration@"+build {
		t.Errorf("azure-int /int/orders runs %s", img)
	}
	if img := vsphere.image(t, "/prd/orders"); img != orders+":1.0.0" || len(deployments("vsphere-prd")) != 0 {
		t.Errorf("prd was touched before the approval: /prd/orders runs %s, deployments %+v", img, deployments("vsphere-prd"))
	}
	if _, err := testkit.TryDigest(orders + ":1.1.0"); err == nil {
		t.Error("orders:1.1.0 is in the registry before the approval")
	}

	// A release candidate is routed to int too, and the `all` app would
	// take it (1.3.0-rc.1 is higher), but azure-int deploys only
	// integration builds.
	testkit.PushRandomImage(t, orders+":1.3.0-rc.1")
	got.Wait(t, events.TypeImagePushed, 2)
	settled()
	if n := len(deployments("azure-int")); n != 1 {
		t.Errorf("azure-int started %d deployments, want only the integration build's: %+v", n, deployments("azure-int"))
	}
	if img := azure.image(t, "/int/orders"); img != orders+":1.1.0-integration@"+build {
		t.Errorf("azure-int deployed the release candidate (deploy.only): /int/orders runs %s", img)
	}

	// (b) alice approves through the API: the build is retagged 1.1.0 in
	// the same repository, and that deploys to prd only.
	if out := run("approvals", "list", "--state", "pending", "--url", base, "--token", "alice-t0ken"); !strings.Contains(out, ar.ApprovalID) {
		t.Errorf("approvals list does not show the pending promotion %s:\n%s", ar.ApprovalID, out)
	}
	run("approvals", "approve", ar.ApprovalID, "--url", base, "--token", "alice-t0ken", "--reason", "integration tests green")
	promoted := got.Wait(t, events.TypeImagePromoted, 1)
	if p, _ := events.DataAs[events.ImagePromoted](promoted[0]); p.To.Tag != "1.1.0" || p.To.Environment != "prd" || p.To.Digest != build || p.To.Registry != reg.Host {
		t.Fatalf("promoted %+v", p.To)
	}
	if d := testkit.Digest(t, orders+":1.1.0"); d != build {
		t.Fatalf("orders:1.1.0 is %s, the integration build %s", d, build)
	}
	released := orders + ":1.1.0@" + build
	if prd := succeededOn("vsphere-prd"); prd.AppID != "/prd/orders" || prd.ToImage != released {
		t.Fatalf("prd deployment %+v, want /prd/orders to %s", prd, released)
	}
	settled()
	if img := vsphere.image(t, "/prd/orders"); img != released {
		t.Errorf("vsphere-prd /prd/orders runs %s, want %s", img, released)
	}
	// Promoted and pinned: nothing left to report.
	testkit.WaitFor(t, "prd compliant after the promoted release", func() bool { return len(violations()) == 0 })
	// The retag's own push notification and the promotion name the same
	// digest: one deployment.
	if n := len(deployments("vsphere-prd")); n != 1 {
		t.Errorf("vsphere-prd started %d deployments, want 1: %+v", n, deployments("vsphere-prd"))
	}
	if img := azure.image(t, "/int/orders"); img != orders+":1.1.0-integration@"+build || len(deployments("azure-int")) != 1 {
		t.Errorf("azure-int took the release: /int/orders runs %s", img)
	}

	// One digest, two tags, two clusters: where finds both.
	if out := run("where", build, "--nats", ns.URL); !strings.Contains(out, "azure-int") || !strings.Contains(out, "/int/orders") ||
		!strings.Contains(out, "vsphere-prd") || !strings.Contains(out, "/prd/orders") {
		t.Errorf("where %s does not find both orders apps:\n%s", build, out)
	}

	// (c) A release tag pushed straight into the registry is routed to
	// prd, but prd deploys only promoted images: refused, naming the
	// pusher.
	testkit.PushRandomImage(t, orders+":1.2.0")
	direct := testkit.Digest(t, orders+":1.2.0")
	// Either outcome ends the wait: a deployment of it is the failure.
	testkit.WaitFor(t, "the direct push's refusal or deployment", func() bool {
		return len(got.Of(events.TypeDeploymentRefused)) > 0 || len(deployments("vsphere-prd")) > 1
	})
	settled()
	if img := vsphere.image(t, "/prd/orders"); img != released || len(deployments("vsphere-prd")) != 1 {
		t.Fatalf("the direct push was deployed: /prd/orders runs %s", img)
	}
	refused, _ := events.DataAs[events.DeploymentRefused](got.Of(events.TypeDeploymentRefused)[0])
	if refused.Cluster != "vsphere-prd" || refused.Digest != direct || refused.Actor != "ci" || refused.Tag != "1.2.0" ||
		!slices.Contains(refused.Workloads, "/prd/orders") {
		t.Errorf("deployment.refused %+v, want vsphere-prd, %s pushed by ci, /prd/orders", refused, direct)
	}
	if n := len(got.Of(events.TypeDeploymentRefused)); n != 1 {
		t.Errorf("%d deployment.refused, want 1", n)
	}
	if out := run("status", "--nats", ns.URL, "--env", "prd"); !strings.Contains(out, "1.2.0") || !strings.Contains(out, "refused") {
		t.Errorf("status --env prd does not show the refused push of 1.2.0:\n%s", out)
	}

	// (d) The history of the production app names who approved what runs.
	if out := run("history", "/prd/orders", "--nats", ns.URL); !strings.Contains(out, "alice") || !strings.Contains(out, "1.1.0") {
		t.Errorf("history /prd/orders does not name the approver of 1.1.0:\n%s", out)
	}

	// (e) Somebody puts the refused release on the production app by
	// hand, by tag: drift, and the rule it breaks, announced.
	byHand := orders + ":1.2.0"
	vsphere.putImage(t, "/prd/orders", byHand)
	drift := got.Wait(t, events.TypeDriftDetected, 1)
	if d, _ := events.DataAs[events.DriftDetected](drift[0]); d.Cluster != "vsphere-prd" || d.AppID != "/prd/orders" || d.ExpectedImage != released || d.ActualImage != byHand {
		t.Errorf("drift.detected %+v, want /prd/orders on vsphere-prd running %s instead of %s", d, byHand, released)
	}
	// It breaks pinned (a tag), and promoted-only: the refused release is
	// in the shared registry, but only a promotion counts there.
	want := []string{"vsphere-prd:/prd/orders:pinned", "vsphere-prd:/prd/orders:promoted-only"}
	testkit.WaitFor(t, "the hand change's compliance violations", func() bool {
		return slices.Equal(brokenRules(violations()), want)
	})
	testkit.WaitFor(t, "compliance.violated for the hand change", func() bool {
		return slices.ContainsFunc(got.Of(events.TypeComplianceViolated), func(e events.Event) bool {
			v, _ := events.DataAs[events.ComplianceViolated](e)
			return v.Image == byHand && v.Rule == "pinned" && v.Cluster == "vsphere-prd" && v.AppID == "/prd/orders"
		})
	})
	if out := run("status", "--drift", "--nats", ns.URL); !strings.Contains(out, "/prd/orders") || !strings.Contains(out, "drift: runs "+byHand) || strings.Contains(out, "/int/orders") {
		t.Errorf("status --drift does not list only /prd/orders running %s:\n%s", byHand, out)
	}
	for _, args := range [][]string{
		{"compliance", "--env", "prd"},
		{"status", "--env", "prd", "--format", "csv"},
		{"events", "list", "--since", "1h", "--subject", "slipway.drift.>"},
		{"events", "list", "--since", "1h", "--subject", "slipway.compliance.>"},
		{"events", "list", "--since", "1h"},
		{"where", direct},
	} {
		out, err := execute(t, t.Context(), append(args, "--nats", ns.URL)...)
		t.Logf("$ slipway %s (%v)\n%s", strings.Join(args, " "), err, out)
	}
}

// consumerDone reports whether a durable consumer has handed out every
// event and has nothing waiting for an ack: its service has handled
// everything published so far.
func consumerDone(ctx context.Context, js jetstream.JetStream, durable string) bool {
	cons, err := js.Consumer(ctx, bus.DefaultStream, durable)
	if err != nil {
		return false
	}
	info, err := cons.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}
