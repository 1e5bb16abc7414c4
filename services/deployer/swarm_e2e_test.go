package deployer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
)

// swarmService shapes a test service.
type swarmService struct {
	labels map[string]string // service labels
	// failureAction is update_config.failure_action; default rollback.
	failureAction string
	// monitor is how long Swarm watches a new task before it counts the
	// update done (update_config.monitor and rollback_config.monitor);
	// default 2 s.
	monitor time.Duration
}

// service creates a one-replica service on the host network running ref,
// with a short update monitor, waits until its task runs, and returns the
// service's name (a random suffix keeps concurrent runs on one swarm
// apart). It is removed at cleanup.
func (h *dockerHost) service(prefix, ref string, o swarmService) string {
	h.t.Helper()
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	name := prefix + "-" + hex.EncodeToString(suffix[:])
	if o.failureAction == "" {
		o.failureAction = swarm.UpdateFailureActionRollback
	}
	if o.monitor == 0 {
		o.monitor = 2 * time.Second
	}
	one := uint64(1)
	// busybox as PID 1 ignores SIGTERM: without a short grace every
	// stop waits Swarm's default 10 s before SIGKILL.
	grace := time.Second
	restartDelay := 200 * time.Millisecond
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: o.labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: ref, StopGracePeriod: &grace},
			// The engine has no bridge: tasks share the host's network.
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &restartDelay},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		UpdateConfig: &swarm.UpdateConfig{
			Parallelism: 1, FailureAction: o.failureAction, Monitor: o.monitor,
			Order: swarm.UpdateOrderStopFirst,
		},
		RollbackConfig: &swarm.UpdateConfig{
			Parallelism: 1, FailureAction: swarm.UpdateFailureActionPause, Monitor: o.monitor,
			Order: swarm.UpdateOrderStopFirst,
		},
	}
	if _, err := h.api.ServiceCreate(h.t.Context(), spec, swarm.ServiceCreateOptions{}); err != nil {
		h.t.Fatalf("create service %s: %v", name, err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := h.api.ServiceRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
			h.t.Errorf("remove service %s: %v", name, err)
		}
	})
	h.converged(name, ref)
	return name
}

// converged waits until the service's spec runs ref, Swarm is neither
// updating nor rolling it back, and its one task runs ref (Swarm reports a
// task running only once its health check passed), and returns it.
func (h *dockerHost) converged(name, ref string) swarm.Service {
	h.t.Helper()
	var s swarm.Service
	testkit.WaitFor(h.t, name+" converged on "+ref, func() bool {
		var err error
		s, _, err = h.api.ServiceInspectWithRaw(h.t.Context(), name, swarm.ServiceInspectOptions{})
		if err != nil || s.Spec.TaskTemplate.ContainerSpec.Image != ref {
			return false
		}
		if u := s.UpdateStatus; u != nil && (u.State == swarm.UpdateStateUpdating || u.State == swarm.UpdateStateRollbackStarted) {
			return false
		}
		tasks, err := h.api.TaskList(h.t.Context(), swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", s.ID), filters.Arg("desired-state", string(swarm.TaskStateRunning)))})
		if err != nil || len(tasks) != 1 {
			return false
		}
		tk := tasks[0]
		return tk.Status.State == swarm.TaskStateRunning && tk.Spec.ContainerSpec.Image == ref
	})
	return s
}

func (h *dockerHost) serviceInspect(name string) swarm.Service {
	h.t.Helper()
	s, _, err := h.api.ServiceInspectWithRaw(h.t.Context(), name, swarm.ServiceInspectOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// updateByHand sets the service's image as `docker service update --image`
// does, and waits until Swarm rolled it out.
func (h *dockerHost) updateByHand(name, ref string) {
	h.t.Helper()
	s := h.serviceInspect(name)
	spec := s.Spec
	cs := *spec.TaskTemplate.ContainerSpec
	cs.Image = ref
	spec.TaskTemplate.ContainerSpec = &cs
	if _, err := h.api.ServiceUpdate(h.t.Context(), s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		h.t.Fatalf("update service %s by hand: %v", name, err)
	}
	h.converged(name, ref)
}

var managed = map[string]string{"slipway.policy": "all"}

// A push reaches a labelled Swarm service: it runs the new digest,
// converged, deployment.succeeded is announced once naming the platform
// and the version index the update made, and the inventory shows the image.
func TestSwarmServiceIsUpdatedOnPush(t *testing.T) {
	h := newSwarmHost(t)
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	v2ref, v2dig := h.image("apps/web", "1.1.0", "v2", false)
	name := h.service("web-push", v1ref, swarmService{labels: managed})
	before := h.serviceInspect(name).Version.Index
	h.e.start(deployer.New())

	h.pushed("apps/web", "1.1.0", v2dig)
	ok := h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	h.e.drained()

	after := h.converged(name, v2ref)
	d := deploymentOf(t, ok[0])
	// The update's version index lies after the service's creation and
	// no later than what Swarm's updater has written since.
	idx, err := strconv.ParseUint(d.DeploymentID, 10, 64)
	if err != nil || idx <= before || idx > after.Version.Index || d.Revision != d.DeploymentID {
		t.Errorf("deploymentId %q, revision %q: want the version index of the update (after %d, at most %d)",
			d.DeploymentID, d.Revision, before, after.Version.Index)
	}
	if d.Platform != "swarm" || d.AppID != name || d.FromImage != v1ref || d.ToImage != v2ref || d.MarathonDeploymentID != "" {
		t.Errorf("succeeded data: %+v", d)
	}
	started := h.e.rec.Of(events.TypeDeploymentStarted)
	if len(started) != 1 || deploymentOf(t, started[0]).DeploymentID != d.DeploymentID {
		t.Errorf("deployment.started: %d events, want 1 with deploymentId %s", len(started), d.DeploymentID)
	}
	if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)); n != 1 {
		t.Errorf("%d deployment.succeeded, want 1", n)
	}
	if !inventoryHas(t, h.e, "host1", name, v2ref) {
		t.Errorf("the inventory does not show %s on %s", v2ref, name)
	}
}

// An image that exits at once fails Swarm's update monitor; Swarm rolls
// the service back by itself (failure_action rollback) and the deployer
// reports deployment.failed with rolledBack and Swarm's reason, the old
// image running.
func TestSwarmRollsBackABrokenImageItself(t *testing.T) {
	failed := brokenPushIsRolledBack(t, swarm.UpdateFailureActionRollback, managed)
	// Swarm's message changes as its rollback goes on ("update rolled back
	// due to failure…" while it runs, "rollback completed" at the end);
	// the deployer says which of them it saw, after its own words.
	if !strings.Contains(failed.Reason, "Swarm rolled the update back") {
		t.Errorf("reason %q, want it to say Swarm rolled the update back", failed.Reason)
	}
}

// A service whose update_config pauses on failure is left paused by Swarm
// with a broken image; Slipway rolls it back to the old image (within the
// service's short deploy timeout) and reports deployment.failed with
// rolledBack.
func TestSwarmPausedUpdateIsRolledBackBySlipway(t *testing.T) {
	labels := map[string]string{"slipway.policy": "all", "slipway.timeout": "20s"}
	failed := brokenPushIsRolledBack(t, swarm.UpdateFailureActionPause, labels)
	if !strings.Contains(failed.Reason, "paused due to failure") {
		t.Errorf("reason %q, want Swarm's pause's", failed.Reason)
	}
}

// brokenPushIsRolledBack pushes an image that exits at once to a service
// with the update failure action and labels, and checks the deployment
// ended rolled back: deployment.failed with rolledBack, none succeeded,
// the service converged on the old image after Swarm's rollback. It
// returns the failure.
func brokenPushIsRolledBack(t *testing.T, failureAction string, labels map[string]string) events.Deployment {
	h := newSwarmHost(t)
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	_, badDig := h.image("apps/web", "1.1.0", "", true)
	name := h.service("web-broken-"+failureAction, v1ref, swarmService{labels: labels, failureAction: failureAction})
	h.e.start(deployer.New())

	h.pushed("apps/web", "1.1.0", badDig)
	failed := deploymentOf(t, h.e.rec.Wait(t, events.TypeDeploymentFailed, 1)[0])
	h.e.drained()

	if !failed.RolledBack || failed.Platform != "swarm" || failed.AppID != name || failed.Reason == "" {
		t.Errorf("failed data: %+v, want rolledBack on swarm with a reason", failed)
	}
	s := h.converged(name, v1ref)
	if s.UpdateStatus == nil || s.UpdateStatus.State != swarm.UpdateStateRollbackCompleted {
		t.Errorf("update status %+v, want Swarm's rollback completed", s.UpdateStatus)
	}
	if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)); n != 0 {
		t.Errorf("%d deployment.succeeded, want none", n)
	}
	return failed
}

// A deployer killed right after Swarm accepted the update, before it
// recorded it, resumes on restart: exactly one outcome, the new image.
func TestSwarmCrashedDeployerResumes(t *testing.T) {
	h := newSwarmHost(t)
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	v2ref, v2dig := h.image("apps/web", "1.1.0", "v2", false)
	name := h.service("web-swarm-crash", v1ref, swarmService{labels: managed})

	ctx, crash := context.WithCancel(context.Background())
	wait := h.e.startCtx(ctx, &deployer.Service{Hooks: &deployer.Hooks{
		AfterPut: func(string, string) { crash() }, // the update made, not recorded
	}})
	h.pushed("apps/web", "1.1.0", v2dig)
	wait()
	if got := h.serviceInspect(name).Spec.TaskTemplate.ContainerSpec.Image; got != v2ref {
		t.Fatalf("the first deployer stopped with the service on %s; want the update to %s made", got, v2ref)
	}

	h.e.start(deployer.New())
	h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	h.e.drained()
	h.converged(name, v2ref)
	if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)) + len(h.e.rec.Of(events.TypeDeploymentFailed)); n != 1 {
		t.Errorf("%d outcomes, want exactly 1", n)
	}
}

// A service updated by hand to another image is drift, reported once per
// change: a second change by hand is the next report, not a repeat of the
// first.
func TestSwarmChangeByHandIsDrift(t *testing.T) {
	h := newSwarmHost(t)
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	v9ref, _ := h.image("apps/web", "0.9.0", "v0.9", false)
	v8ref, _ := h.image("apps/web", "0.8.0", "v0.8", false)
	name := h.service("web-swarm-drift", v1ref, swarmService{labels: managed})
	h.e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool {
		return inventoryHas(t, h.e, "host1", name, v1ref)
	})

	h.updateByHand(name, v9ref) // docker service update --image …:0.9.0
	h.e.rec.Wait(t, events.TypeDriftDetected, 1)
	h.updateByHand(name, v8ref)
	drifts := h.e.rec.Wait(t, events.TypeDriftDetected, 2)

	for i, actual := range []string{v9ref, v8ref} {
		d, err := events.DataAs[events.DriftDetected](drifts[i])
		if err != nil {
			t.Fatal(err)
		}
		if d.AppID != name || d.Platform != "swarm" || d.ExpectedImage != v1ref || d.ActualImage != actual {
			t.Errorf("drift %d: %+v, want expected %s, actual %s", i+1, d, v1ref, actual)
		}
	}
	if n := len(h.e.rec.Of(events.TypeDeploymentStarted)); n != 0 {
		t.Errorf("%d deployment.started: drift is reported, not deployed over", n)
	}
}

// A service without slipway.policy running an image of the pushed
// repository is never touched: its version index is unchanged after the
// push a labelled service of the same repository took.
func TestSwarmUnlabelledServiceIsNeverTouched(t *testing.T) {
	h := newSwarmHost(t)
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	_, v2dig := h.image("apps/web", "1.1.0", "v2", false)
	// A sleeper: the port is the managed service's.
	idle := testkit.BusyboxImage(t, testkit.BusyboxOptions{Cmd: []string{"sleep", "3600"}})
	idleRef := h.reg.Host + "/apps/web:1.0.0-idle@" + testkit.PushImage(t, h.reg.Host+"/apps/web:1.0.0-idle", idle)
	unmanaged := h.service("web-unmanaged", idleRef, swarmService{labels: map[string]string{"team": "web"}})
	name := h.service("web-managed", v1ref, swarmService{labels: managed})
	before := h.serviceInspect(unmanaged)
	h.e.start(deployer.New())

	h.pushed("apps/web", "1.1.0", v2dig)
	ok := deploymentOf(t, h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)[0])
	h.e.drained()

	if ok.AppID != name {
		t.Errorf("deployment.succeeded for %s, want %s", ok.AppID, name)
	}
	after := h.serviceInspect(unmanaged)
	if after.Version.Index != before.Version.Index || after.Spec.TaskTemplate.ContainerSpec.Image != idleRef {
		t.Errorf("the unlabelled service was touched: version %d (was %d), image %s",
			after.Version.Index, before.Version.Index, after.Spec.TaskTemplate.ContainerSpec.Image)
	}
	for _, ev := range h.e.rec.All() {
		if d, err := events.DataAs[events.Deployment](ev); err == nil && d.AppID == unmanaged {
			t.Errorf("the unlabelled service appears in %s", ev.Type())
		}
	}
}

// A redeploy of a Swarm service raises its ForceUpdate: Swarm replaces the
// task with the same spec under a new version, and the deployer announces
// a deployment of the image to itself, naming the action and the actor.
func TestSwarmRedeployForcesAnUpdate(t *testing.T) {
	h := newSwarmHost(t)
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	name := h.service("web-redeploy", v1ref, swarmService{labels: managed})
	before := h.serviceInspect(name)
	h.e.start(deployer.New())

	action := h.e.act(events.ActionRedeploy, "host1", name, "", "maria")
	d := deploymentOf(t, h.e.waitCausedBy(events.TypeDeploymentSucceeded, action, 1)[0])
	h.e.drained()

	after := h.converged(name, v1ref)
	if got, want := after.Spec.TaskTemplate.ForceUpdate, before.Spec.TaskTemplate.ForceUpdate+1; got != want {
		t.Errorf("ForceUpdate = %d, want %d", got, want)
	}
	if d.Platform != "swarm" || d.FromImage != v1ref || d.ToImage != v1ref || d.Action != events.ActionRedeploy ||
		d.Actor != "maria" || d.Revision == strconv.FormatUint(before.Version.Index, 10) {
		t.Errorf("succeeded data: %+v (version before %d)", d, before.Version.Index)
	}
}
