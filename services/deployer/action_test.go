package deployer_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// act announces a manual action on a workload of cluster as the console
// would.
func (e *env) act(action, cluster, appID, image, actor string) events.Event {
	e.t.Helper()
	ev, err := actions.Publish(e.t.Context(), bus.NewPublisher(e.js, ""), actions.Request{
		ID: actions.NewID(), Action: action, Actor: actor, Via: events.ViaConsole,
		Target: events.ActionTarget{Environment: "dev", Cluster: cluster, AppID: appID, Image: image},
		Reason: "checking the " + action,
	}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// redeliver stores another copy of an event in the stream, as a
// redelivery hands it to the consumer again: the same event, the same id.
func (e *env) redeliver(ev events.Event) {
	e.t.Helper()
	m, err := events.ToMsg(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	m.Header.Del(events.HeaderMsgID) // past JetStream's duplicate window
	if _, err := e.js.PublishMsg(e.t.Context(), m); err != nil {
		e.t.Fatal(err)
	}
}

// causedBy returns the recorded events of type t whose cause is ev.
func (e *env) causedBy(t events.Type, ev events.Event) []events.Event {
	var out []events.Event
	for _, x := range e.rec.Of(t) {
		if events.CausationOf(x) == ev.ID() {
			out = append(out, x)
		}
	}
	return out
}

// waitCausedBy waits for n events of type t caused by ev.
// When they do not come, it says what the action caused instead.
func (e *env) waitCausedBy(t events.Type, ev events.Event, n int) []events.Event {
	e.t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(e.causedBy(t, ev)) < n {
		select {
		case <-tick.C:
			continue
		case <-deadline:
			var caused []string
			for _, x := range e.rec.All() {
				if events.CausationOf(x) == ev.ID() {
					caused = append(caused, events.Type(x.Type()).Short()+" "+string(x.Data()))
				}
			}
			e.t.Fatalf("no %d %s caused by action %s within a minute; it caused: %v", n, t.Short(), ev.ID(), caused)
		}
	}
	return e.causedBy(t, ev)
}

// inventoryOf reads a workload's inventory record.
func (e *env) inventoryOf(cluster, id string) inventory.Record {
	e.t.Helper()
	inv, err := inventory.Bind(e.t.Context(), e.js)
	if err != nil {
		e.t.Fatal(err)
	}
	r, ok, err := inv.Get(e.t.Context(), cluster, id)
	if err != nil || !ok {
		e.t.Fatalf("no inventory record of %s %s (%v)", cluster, id, err)
	}
	return r
}

// writes counts the requests that change an app: PUTs, restarts, cancels.
func (m *marathonCluster) writes() int {
	n := 0
	for _, r := range m.emu.Requests() {
		if r.Method != "GET" {
			n++
		}
	}
	return n
}

// TestRollbackReturnsToThePreviousImage: after a push deployed 1.1.0, a
// rollback asked for in the console puts 1.0.0 back through a deployment
// of its own, whose events name the action as their cause and the person
// as their actor; the inventory shows the rollback and who asked.
func TestRollbackReturnsToThePreviousImage(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", old, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	pushed := registry + "/apps/web:1.1.0@" + digest("1.1.0")

	action := e.act(events.ActionRollback, "azure-int", "/dev/web", "", "maria@example.com")
	succeeded := e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)
	e.drained()

	if got := c.image(t, "/dev/web"); got != old {
		t.Fatalf("after the rollback /dev/web runs %s, want %s", got, old)
	}
	started := e.causedBy(events.TypeDeploymentStarted, action)
	if len(started) != 1 {
		t.Fatalf("%d deployment.started caused by the action, want 1", len(started))
	}
	for _, ev := range []events.Event{started[0], succeeded[0]} {
		d := deploymentOf(t, ev)
		if d.Action != events.ActionRollback || d.Actor != "maria@example.com" || d.FromImage != pushed || d.ToImage != old ||
			d.DeploymentID == "" || d.Refused {
			t.Errorf("%s data: %+v", ev.Type(), d)
		}
	}
	if n := c.puts("/dev/web"); n != 2 {
		t.Errorf("%d PUTs, want 2 (the push's and the rollback's)", n)
	}
	r := e.inventoryOf("azure-int", "/dev/web")
	ld := r.LastDeployment
	if r.Image != old || ld == nil || ld.Action != events.ActionRollback || ld.Actor != "maria@example.com" ||
		ld.CauseID != action.ID() || ld.FromImage != pushed || ld.Outcome != inventory.Succeeded {
		t.Errorf("inventory: image %s, last deployment %+v", r.Image, ld)
	}
	if len(r.Previous) == 0 || r.Previous[0] != pushed {
		t.Errorf("inventory previous = %v, want %s first", r.Previous, pushed)
	}
	for _, f := range e.rec.Of(events.TypeDriftDetected) {
		t.Errorf("the rollback was taken for drift: %s", f.Data())
	}
}

// TestRollbackToANamedImageItRanBefore: a rollback may name the image to
// go back to, by tag alone, if the workload ran it before.
func TestRollbackToANamedImageItRanBefore(t *testing.T) {
	first := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", first, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	for i, tag := range []string{"1.1.0", "1.2.0"} {
		e.push("apps/web", tag, digest(tag), time.Now())
		e.rec.Wait(t, events.TypeDeploymentSucceeded, i+1)
	}
	action := e.act(events.ActionRollback, "azure-int", "/dev/web", registry+"/apps/web:1.0.0", "maria")
	e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)
	if got := c.image(t, "/dev/web"); got != first {
		t.Errorf("after the rollback /dev/web runs %s, want %s", got, first)
	}
}

// TestRedeployMakesANewDeploymentOfTheSameImage: a redeploy has Marathon
// restart the app: a new deployment and a new version of the same
// definition, announced as a deployment from the image to itself.
func TestRedeployMakesANewDeploymentOfTheSameImage(t *testing.T) {
	img := registry + "/apps/web:1.0.0@" + digest("1.0.0")
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", img, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	versionBefore := c.version(t, "/dev/web")
	e.start(deployer.New())

	action := e.act(events.ActionRedeploy, "azure-int", "/dev/web", "", "ops-bot")
	d := deploymentOf(t, e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)[0])
	e.drained()

	if d.FromImage != img || d.ToImage != img || d.Action != events.ActionRedeploy || d.Actor != "ops-bot" ||
		d.DeploymentID == "" || d.Revision == versionBefore || d.Digest != digest("1.0.0") {
		t.Errorf("succeeded data: %+v (version before %s)", d, versionBefore)
	}
	var restarts int
	for _, r := range c.emu.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/v2/apps/dev/web/restart") && r.Status < 300 {
			restarts++
		}
	}
	if restarts != 1 {
		t.Errorf("%d restarts of /dev/web, want 1", restarts)
	}
	if v := c.version(t, "/dev/web"); v == versionBefore || v != d.Revision {
		t.Errorf("app version %s (before %s, announced %s): the redeploy made no new version", v, versionBefore, d.Revision)
	}
	if got := c.image(t, "/dev/web"); got != img {
		t.Errorf("/dev/web runs %s, want %s", got, img)
	}
}

// version returns an app's Marathon version.
func (m *marathonCluster) version(t *testing.T, id string) string {
	t.Helper()
	raw, _ := m.emu.App(id)
	var a marathon.App
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a.Version
}

// TestRedeliveredActionDeploysOnce: the same action handed to the
// deployer again, once it was carried out, changes nothing and announces
// nothing more.
func TestRedeliveredActionDeploysOnce(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	action := e.act(events.ActionRedeploy, "azure-int", "/dev/web", "", "maria")
	e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)
	e.drained()
	writes := c.writes()

	e.redeliver(action)
	e.drained()
	if n := c.writes(); n != writes {
		t.Errorf("%d more writes to Marathon after the redelivery, want none", n-writes)
	}
	for _, typ := range []events.Type{events.TypeDeploymentStarted, events.TypeDeploymentSucceeded, events.TypeDeploymentFailed} {
		want := 1
		if typ == events.TypeDeploymentFailed {
			want = 0
		}
		if n := len(e.causedBy(typ, action)); n != want {
			t.Errorf("%d %s caused by the action, want %d", n, typ.Short(), want)
		}
	}
}

// TestRefusedActionsChangeNothing: an action on a workload that does not
// exist, that Slipway does not manage, that has nothing to roll back to,
// that never ran the image named, whose image the cluster may not run, or
// that is being deployed, ends deployment.failed with refused, the action
// as its cause and a reason a person understands; Marathon is not asked
// to change anything.
func TestRefusedActionsChangeNothing(t *testing.T) {
	// /dev/busy's new tasks never become healthy: its deployment stays in
	// flight for as long as an action may wait for it to end.
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 2 * time.Second, UnhealthyImages: regexp.MustCompile(`apps/busy`)},
		appJSON("/dev/web", registry+"/apps/web:0.9.0", map[string]string{"slipway.policy": "all"}),
		appJSON("/dev/fresh", registry+"/apps/fresh:1.0.0", map[string]string{"slipway.policy": "all"}),
		appJSON("/dev/manual", registry+"/apps/manual:1.0.0", nil),
		appJSON("/dev/busy", registry+"/apps/busy:1.0.0", map[string]string{"slipway.policy": "all"}),
	)
	// The cluster runs 1.x releases only: 0.9.0 ran before that rule.
	e := newEnvWith(t, `deploy: { only: { tags: { semver: ">=1.0.0" } } }`, c)
	e.start(deployer.New())
	e.push("apps/web", "1.0.0", digest("web-1.0.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	c.settled(t, "/dev/web", registry+"/apps/web:1.0.0@"+digest("web-1.0.0"))
	e.drained()
	// Somebody scales /dev/busy: a Marathon deployment holds it.
	putJSON(t, c.url+"/v2/apps/dev/busy", `{"instances":3}`)
	writes := c.writes()

	for _, tc := range []struct {
		name, action, app, image, reason string
	}{
		{"unknown workload", events.ActionRedeploy, "/dev/nope", "", "there is no workload /dev/nope on azure-int"},
		{"unmanaged", events.ActionRollback, "/dev/manual", "", "/dev/manual is not managed by Slipway (it has no slipway.policy label)"},
		{"nothing to roll back to", events.ActionRollback, "/dev/fresh", "", "/dev/fresh has nothing to roll back to"},
		{"never ran the image", events.ActionRollback, "/dev/web", registry + "/apps/web:0.8.0", "/dev/web never ran " + registry + "/apps/web:0.8.0"},
		{"outside deploy.only", events.ActionRollback, "/dev/web", "", "azure-int may not run " + registry + "/apps/web:0.9.0: it is outside the cluster's deploy.only"},
		{"in flight", events.ActionRedeploy, "/dev/busy", "", "a deployment of /dev/busy is in progress"},
	} {
		action := e.act(tc.action, "azure-int", tc.app, tc.image, "maria")
		failed := e.waitCausedBy(events.TypeDeploymentFailed, action, 1)
		d := deploymentOf(t, failed[0])
		if !d.Refused || d.RolledBack || d.Action != tc.action || d.Actor != "maria" || d.AppID != tc.app ||
			!strings.HasPrefix(d.Reason, tc.reason) {
			t.Errorf("%s: failed data %+v, want refused with a reason beginning %q", tc.name, d, tc.reason)
		}
		if n := len(e.causedBy(events.TypeDeploymentStarted, action)); n != 0 {
			t.Errorf("%s: %d deployment.started for a refused action", tc.name, n)
		}
	}
	e.drained()
	if n := c.writes(); n != writes {
		t.Errorf("%d writes to Marathon for refused actions, want none", n-writes)
	}
	if got := e.inventoryOf("azure-int", "/dev/web").LastDeployment; got == nil || got.Action != "" || got.Outcome != inventory.Succeeded {
		t.Errorf("/dev/web's last deployment is %+v, want the push's kept", got)
	}
}

// TestActionsOfOtherKindsAndClustersAreLeftAlone: a promote, and a
// rollback on another cluster of the environment, are acknowledged
// without a deployment or a refusal.
func TestActionsOfOtherKindsAndClustersAreLeftAlone(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	e.act(events.ActionRollback, "other-cluster", "/dev/web", "", "maria")
	if _, err := actions.Publish(t.Context(), bus.NewPublisher(e.js, ""), actions.Request{
		ID: actions.NewID(), Action: events.ActionPromote, Actor: "maria", Via: events.ViaCLI,
		Target: events.ActionTarget{Environment: "dev", Image: registry + "/apps/web:1.1.0", Promotion: "ci-to-dev"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if n := len(e.rec.All()); n != 0 {
		t.Errorf("%d deployer events for actions not this cluster's", n)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("%d writes to Marathon", n)
	}
}

// TestCrashMidRollbackResumes: a deployer dies while Marathon carries out
// a rollback it asked for (recorded, announced); the next one follows the
// same deployment instead of rolling back again, and the action ends in
// one deployment.succeeded. Reconcile, meanwhile, does not take the
// rolled-back app for drift.
func TestCrashMidRollbackResumes(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 300 * time.Millisecond},
		appJSON("/dev/web", old, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	stop := e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()
	stop()

	ctx, crash := context.WithCancel(context.Background())
	wait := e.startCtx(ctx, &deployer.Service{Hooks: &deployer.Hooks{BeforePhase: func(_, _, p string) {
		if p == "following" {
			crash()
		}
	}}})
	action := e.act(events.ActionRollback, "azure-int", "/dev/web", "", "maria")
	wait()
	// Announced before the crash; the recorder may get it a moment later.
	if n := len(e.waitCausedBy(events.TypeDeploymentStarted, action, 1)); n != 1 {
		t.Fatalf("%d deployment.started before the crash, want 1", n)
	}
	c.settled(t, "/dev/web", old)

	e.start(deployer.New())
	e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)
	e.drained()
	if n := c.puts("/dev/web"); n != 2 {
		t.Errorf("%d PUTs, want 2 (the push's and one rollback)", n)
	}
	if n := len(e.causedBy(events.TypeDeploymentStarted, action)); n != 1 {
		t.Errorf("%d deployment.started, want 1", n)
	}
	if n := len(e.causedBy(events.TypeDeploymentFailed, action)); n != 0 {
		t.Errorf("%d deployment.failed, want none", n)
	}
	if r := e.inventoryOf("azure-int", "/dev/web"); r.Image != old || r.Drift != "" {
		t.Errorf("inventory: image %s, drift %q; want %s and no drift", r.Image, r.Drift, old)
	}
	for _, f := range e.rec.Of(events.TypeDriftDetected) {
		t.Errorf("the resumed rollback was taken for drift: %s", f.Data())
	}
}

// TestDockerRollbackRecreatesThePreviousImage: on a real Docker engine, a
// rollback after a push recreates the container on the image it ran
// before, healthy, with its configuration kept; the events name the action
// and the actor, and one container bears the name.
func TestDockerRollbackRecreatesThePreviousImage(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	v2ref, v2dig := h.image("apps/web", "1.1.0", "v2", false)
	h.run("web-rollback", v1ref, map[string]string{"slipway.policy": "all"})
	before := h.inspect("web-rollback")
	h.e.start(deployer.New())
	h.pushed("apps/web", "1.1.0", v2dig)
	h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	pushedID := h.inspect("web-rollback").ID

	action := h.e.act(events.ActionRollback, "host1", "web-rollback", "", "maria")
	d := deploymentOf(t, h.e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)[0])
	h.e.drained()

	after := h.inspect("web-rollback")
	if after.Config.Image != v1ref || after.ID == pushedID || !after.State.Running || after.State.Health.Status != "healthy" {
		t.Errorf("web-rollback: image %s, id %.12s (pushed one %.12s), running %v, health %s; want %s in a new container, healthy",
			after.Config.Image, after.ID, pushedID, after.State.Running, after.State.Health.Status, v1ref)
	}
	if got, want := userConfig(after), userConfig(before); got != want {
		t.Errorf("configuration changed:\n got %s\nwant %s", got, want)
	}
	if d.Platform != "docker" || d.FromImage != v2ref || d.ToImage != v1ref || d.Action != events.ActionRollback ||
		d.Actor != "maria" || d.DeploymentID != after.ID {
		t.Errorf("succeeded data: %+v", d)
	}
	if got := h.containersNamed("web-rollback"); len(got) != 1 {
		t.Errorf("containers left: %v, want only web-rollback", got)
	}
}
