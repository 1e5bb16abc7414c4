package deployer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// TestTwoEnvironmentsOnOneMarathon: an integration cluster serving dev and
// tst is two cluster entries on one Marathon; each manages the apps that
// run its environment's registry's images, so a dev push touches only the
// dev app, and the tst entry never mistakes it for drift.
func TestTwoEnvironmentsOnOneMarathon(t *testing.T) {
	const tstRegistry = "registry.tst.example:5000"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}),
		appJSON("/tst/web", tstRegistry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q } }, { name: tst, registry: { host: %q } } ]
deployer: { reconcileInterval: 100ms, pollInterval: 100ms }
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q, auth: { none: true } } }
  - { name: azure-int-tst, environment: tst, marathon: { url: %q, auth: { none: true } } }
`, ns.URL, registry, tstRegistry, c.url, c.url)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ns: ns, js: js, cfg: cfg, rec: record(t, js), metrics: prometheus.NewRegistry()}
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()
	if n := c.puts("/tst/web"); n != 0 {
		t.Errorf("the tst app got %d PUTs from a dev push", n)
	}
	inv, err := inventory.Bind(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the inventory of both entries", func() bool {
		rs, err := inv.List(t.Context())
		return err == nil && len(rs) == 2
	})
	rs, _ := inv.List(t.Context())
	for _, r := range rs {
		want := map[string]string{"azure-int": "/dev/web", "azure-int-tst": "/tst/web"}[r.Cluster]
		if r.AppID != want {
			t.Errorf("entry %s records %s, want only %s", r.Cluster, r.AppID, want)
		}
		if r.Drift != "" {
			t.Errorf("drift reported on %s %s: %s", r.Cluster, r.AppID, r.Drift)
		}
	}
	if n := len(e.rec.Of(events.TypeDriftDetected)); n != 0 {
		t.Errorf("%d drift.detected, want none", n)
	}
}

// TestAppMovedByHandToTheOtherEnvironmentsRegistryStaysItsClusters: on one
// Marathon serving dev and tst, a dev app changed by hand to an image of
// the tst registry is dev's drift. The tst entry must not adopt it as its
// own: tst pushes would then deploy over the dev app.
func TestAppMovedByHandToTheOtherEnvironmentsRegistryStaysItsClusters(t *testing.T) {
	const tstRegistry = "registry.tst.example:5000"
	c := newListedCluster(t,
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q } }, { name: tst, registry: { host: %q } } ]
deployer: { reconcileInterval: 100ms, pollInterval: 100ms }
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q, auth: { none: true } } }
  - { name: azure-int-tst, environment: tst, marathon: { url: %q, auth: { none: true } } }
`, ns.URL, registry, tstRegistry, c.url, c.url)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ns: ns, js: js, cfg: cfg, rec: record(t, js), metrics: prometheus.NewRegistry()}
	e.start(deployer.New())
	testkit.WaitFor(t, "dev's baseline", func() bool { return inventoryHas(t, e, "azure-int", "/dev/web", registry+"/apps/web:1.0.0") })

	moved := tstRegistry + "/apps/web:1.0.0"
	setImage(t, c.marathonCluster, "/dev/web", moved)
	waitDrift(t, e, "dev's drift to the tst image", func(d events.DriftDetected) bool { return d.Cluster == "azure-int" && d.ActualImage == moved })
	c.passes(t, 3)
	if r, ok := inventoryRecord(t, e, "azure-int-tst", "/dev/web"); ok && r.Policy != "" {
		t.Errorf("the tst entry adopted dev's app: %+v", r)
	}

	// A tst push the app's label would accept must not reach it.
	data := events.ImagePushed{Environment: "tst", Registry: tstRegistry, Repository: "apps/web", Tag: "1.1.0", Digest: digest("tst-1.1.0"),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 700, Source: "tst-registry", Format: "distribution",
		UpstreamID: "u-tst-1.1.0", PushedAt: time.Now()}
	ev, err := events.New(t.Context(), events.Spec{
		ID: events.ID("image.pushed", "tst", tstRegistry, "apps/web", "1.1.0"), Type: events.TypeImagePushed,
		Source: "/slipway/ingest/tst-registry", Environment: "tst", Subject: data.Ref().String(), Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(js, "").Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if got := c.image(t, "/dev/web"); got != moved {
		t.Errorf("/dev/web runs %s after a tst push, want it left on %s (dev's drift, not tst's app)", got, moved)
	}
	if n := len(e.rec.Of(events.TypeDeploymentStarted)); n != 0 {
		t.Errorf("%d deployment.started, want none", n)
	}
}
