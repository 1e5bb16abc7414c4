package deployer_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/promoted"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// pushBy publishes an image.pushed event naming who pushed, under its own
// event id (a registry's second notification of the same push has another).
func (e *env) pushBy(id, actor, repo, tag, dig string) events.Event {
	e.t.Helper()
	return e.pushFrom(registry, id, actor, repo, tag, dig)
}

// pushFrom is pushBy of an image in the registry host.
func (e *env) pushFrom(host, id, actor, repo, tag, dig string) events.Event {
	e.t.Helper()
	data := events.ImagePushed{Environment: "dev", Registry: host, Repository: repo, Tag: tag, Digest: dig,
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 700, Actor: actor, Source: "dev-registry",
		Format: "distribution", UpstreamID: id, PushedAt: time.Now()}
	ev, err := events.New(e.t.Context(), events.Spec{
		ID: id, Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry", Environment: "dev",
		Subject: data.Ref().String(), Data: data,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(e.t.Context(), ev); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// promotedOnly makes the environment deploy only promoted images.
func (e *env) promotedOnly() { e.cfg.Environments[0].Accept = config.AcceptPromoted }

// TestDirectPushToPromotedOnlyEnvironmentIsRefusedOnce: on an environment
// that deploys only promoted images, a push straight into its registry
// updates nothing; it is announced once as deployment.refused naming who
// pushed it and the workloads that would have taken it, and the inventory
// shows it. The same push announced again changes nothing.
func TestDirectPushToPromotedOnlyEnvironmentIsRefusedOnce(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "prd-a", emulator.Options{},
		appJSON("/prd/web", old, map[string]string{"slipway.policy": "all"}),
		appJSON("/prd/web-patch", old, map[string]string{"slipway.policy": "patch"}))
	e := newEnv(t, c)
	e.promotedOnly()
	e.start(deployer.New())

	dig := digest("web-2.0.0-direct")
	cause := e.pushBy("push-1", "mallory", "apps/web", "2.0.0", dig)
	refused := e.rec.Wait(t, events.TypeDeploymentRefused, 1)
	e.drained()

	if got := c.image(t, "/prd/web"); got != old || c.puts("/prd/web") != 0 {
		t.Errorf("/prd/web runs %s after %d PUTs, want it untouched at %s", got, c.puts("/prd/web"), old)
	}
	d, err := events.DataAs[events.DeploymentRefused](refused[0])
	if err != nil {
		t.Fatal(err)
	}
	want := events.DeploymentRefused{Cluster: "prd-a", Environment: "dev", Image: registry + "/apps/web:2.0.0@" + dig,
		Digest: dig, Repository: "apps/web", Tag: "2.0.0", Actor: "mallory", Source: "dev-registry", Reason: d.Reason,
		Workloads: []string{"/prd/web"}} // the patch app would not have taken 2.0.0
	if d.Reason == "" || !slices.Equal(d.Workloads, want.Workloads) {
		t.Errorf("deployment.refused: %+v", d)
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("deployment.refused:\n got %+v\nwant %+v", d, want)
	}
	if events.CausationOf(refused[0]) != cause.ID() || events.EnvironmentOf(refused[0]) != "dev" {
		t.Errorf("causation %q, environment %q", events.CausationOf(refused[0]), events.EnvironmentOf(refused[0]))
	}
	if n := len(e.rec.Of(events.TypeDeploymentStarted)); n != 0 {
		t.Errorf("%d deployment.started, want none", n)
	}

	inv, err := inventory.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := inv.Get(t.Context(), "prd-a", "/prd/web")
	if err != nil || !ok || rec.Refused == nil {
		t.Fatalf("inventory of /prd/web: %+v %v %v", rec, ok, err)
	}
	if r := rec.Refused; r.Image != want.Image || r.Actor != "mallory" || r.Digest != dig || r.EventID != refused[0].ID() || r.At.IsZero() {
		t.Errorf("inventory refusal %+v", r)
	}
	if rec.Image != old {
		t.Errorf("inventory says /prd/web runs %s, want %s", rec.Image, old)
	}

	// The registry notifies again (another delivery id), and another tag
	// of the same digest: still one announcement, still nothing deployed.
	e.pushBy("push-2", "mallory", "apps/web", "2.0.0", dig)
	e.pushBy("push-3", "mallory", "apps/web", "2.0.1", dig)
	e.drained()
	if n := len(e.rec.Of(events.TypeDeploymentRefused)); n != 1 {
		t.Errorf("%d deployment.refused, want 1", n)
	}
	if n := c.puts("/prd/web"); n != 0 {
		t.Errorf("/prd/web got %d PUTs, want none", n)
	}
}

// TestPushOfPromotedDigestIsDeployed: the promoted copy arriving by the
// target registry's webhook is deployed, because the promoter recorded the
// digest as promoted into the environment before it copied.
func TestPushOfPromotedDigestIsDeployed(t *testing.T) {
	c := newCluster(t, "prd-a", emulator.Options{},
		appJSON("/prd/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.promotedOnly()
	e.start(deployer.New())

	dig := digest("web-1.1.0-promoted")
	store, err := promoted.Open(t.Context(), e.js, 1, e.cfg.NATS.Stream.MaxAge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(t.Context(), promoted.Record{Environment: "dev", Digest: dig, Repository: "apps/web", Tag: "1.1.0",
		Rule: "tst-to-dev", CauseID: "approval-granted-1", ApprovalID: "a-1", Approver: "rm", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.pushBy("webhook-1", "slipway-promoter", "apps/web", "1.1.0", dig)
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()
	if got, want := c.image(t, "/prd/web"), registry+"/apps/web:1.1.0@"+dig; got != want {
		t.Errorf("/prd/web runs %s, want %s", got, want)
	}
	if n := len(e.rec.Of(events.TypeDeploymentRefused)); n != 0 {
		t.Errorf("%d deployment.refused for a promoted digest", n)
	}
}

// TestImagePromotedIsDeployedOnPromotedOnlyEnvironment: image.promoted is
// a promotion by definition.
func TestImagePromotedIsDeployedOnPromotedOnlyEnvironment(t *testing.T) {
	c := newCluster(t, "prd-a", emulator.Options{},
		appJSON("/prd/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.promotedOnly()
	e.start(deployer.New())

	dig := digest("web-1.2.0")
	e.promote("apps/web", "1.2.0", dig)
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	if got, want := c.image(t, "/prd/web"), registry+"/apps/web:1.2.0@"+dig; got != want {
		t.Errorf("/prd/web runs %s, want %s", got, want)
	}
}

// TestClusterAcceptOverridesEnvironment: a cluster's deploy.accept wins over
// its environment's accept, in both directions.
func TestClusterAcceptOverridesEnvironment(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	labels := map[string]string{"slipway.policy": "all"}
	open, inherits := newCluster(t, "int-open", emulator.Options{}, appJSON("/web", old, labels)),
		newCluster(t, "int-inherits", emulator.Options{}, appJSON("/web", old, labels))
	e := newEnv(t, open, inherits)
	e.promotedOnly()
	e.cfg.Clusters[0].Deploy.Accept = config.AcceptAny
	e.start(deployer.New())

	dig := digest("web-1.1.0-direct")
	e.pushBy("push-1", "dev-ci", "apps/web", "1.1.0", dig)
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	refused := e.rec.Wait(t, events.TypeDeploymentRefused, 1)
	e.drained()
	if got, want := open.image(t, "/web"), registry+"/apps/web:1.1.0@"+dig; got != want {
		t.Errorf("int-open (deploy.accept: any) runs %s, want %s", got, want)
	}
	if got := inherits.image(t, "/web"); got != old {
		t.Errorf("int-inherits (environment accept: promoted) runs %s, want %s", got, old)
	}
	if d, _ := events.DataAs[events.DeploymentRefused](refused[0]); d.Cluster != "int-inherits" {
		t.Errorf("refused on %s", d.Cluster)
	}

	cfg := &config.Config{
		Environments: []config.Environment{{Name: "prd"}},
		Clusters:     []config.Cluster{{Name: "p", Environment: "prd", Deploy: config.DeployPolicy{Accept: config.AcceptPromoted}}, {Name: "q", Environment: "prd"}},
	}
	if got := cfg.AcceptOf(cfg.Clusters[0]); got != config.AcceptPromoted {
		t.Errorf("a cluster's accept: promoted on an environment that accepts any gives %s", got)
	}
	if got := cfg.AcceptOf(cfg.Clusters[1]); got != config.AcceptAny {
		t.Errorf("the default is %s, want any", got)
	}
}

// TestDeployOnlyKeepsOtherImagesOffTheCluster: an integration cluster's
// deploy.only keeps a production tag away from an app labelled all, and
// lets a matching tag through.
func TestDeployOnlyKeepsOtherImagesOffTheCluster(t *testing.T) {
	old := registry + "/integration/web:1.0.0-integration"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/int/web", old, map[string]string{"slipway.policy": "all"}))
	e := newEnvWith(t, `deploy: { only: { repositories: ["integration/**"], tags: { regex: '.*-integration' } } }`, c)
	e.start(deployer.New())

	e.push("integration/web", "2.0.0", digest("web-2.0.0"), time.Now()) // all would take it
	e.drained()
	if got := c.image(t, "/int/web"); got != old || c.puts("/int/web") != 0 {
		t.Errorf("/int/web runs %s, want the production tag kept off it", got)
	}

	dig := digest("web-1.1.0-integration")
	e.push("integration/web", "1.1.0-integration", dig, time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	if got, want := c.image(t, "/int/web"), registry+"/integration/web:1.1.0-integration@"+dig; got != want {
		t.Errorf("/int/web runs %s, want %s", got, want)
	}
}

// deploy.accept and deploy.only are checked with the key of each problem.
func TestConfigChecksAcceptAndOnly(t *testing.T) {
	doc := `environments: [{name: dev, accept: approved, registry: {host: r}}]
clusters:
  - name: m
    environment: dev
    marathon: { url: 'https://m.example', auth: { none: true } }
    deploy: { accept: sometimes, only: { repositories: ["[a-"], tags: { semver: ">=1.0", regex: ".*" } } }
`
	_, err := config.Parse([]byte(doc), noEnv, deployer.New())
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`environments[0].accept: "approved" must be any or promoted`,
		`clusters[0].deploy.accept: "sometimes" must be any or promoted`,
		`clusters[0].deploy.only.repositories[0]: "[a-" is not a valid glob`,
		`clusters[0].deploy.only.tags: set semver or regex, not both`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	ok := `environments: [{name: dev, accept: promoted, registry: {host: r}}]
clusters:
  - name: m
    environment: dev
    marathon: { url: 'https://m.example', auth: { none: true } }
    deploy: { accept: any, only: { repositories: ["integration/**"], tags: { regex: '.*-integration' } } }
`
	if _, err := config.Parse([]byte(ok), noEnv, deployer.New()); err != nil {
		t.Fatal(err)
	}
}
