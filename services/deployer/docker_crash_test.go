package deployer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	dclient "github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/docker"
)

// The steps of a recreate that succeeds, in order, as the docker target
// names them: Update's, then Await's removal of the old container once the
// new one is healthy.
var recreateSteps = []string{"pull", "create", "stop-old", "rename-old", "rename-new", "start-new", "remove-old"}

// The steps of a rollback of a replacement that runs but never becomes
// healthy, in order (one that has exited has no stop-new).
var rollbackSteps = []string{"stop-new", "rename-failed", "restore-old", "start-old", "remove-failed"}

// A deployer killed right after any step of a recreate, then restarted,
// ends the deployment once: one deployment.succeeded, the container runs
// the new image healthy under its name with the configuration it had, and
// no temporary container is left. At every step the killed deployer took,
// the host still held the old container, or the new one healthy under the
// name.
func TestDockerCrashAfterEachRecreateStepEndsInOneSuccess(t *testing.T) {
	for _, step := range recreateSteps {
		t.Run(step, func(t *testing.T) {
			h := newDockerHost(t, "docker", "")
			v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
			v2ref, v2dig := h.image("apps/web", "1.1.0", "v2", false)
			name := "web-crash-" + step
			oldID := h.run(name, v1ref, map[string]string{"slipway.policy": "all"})
			before := h.inspect(name)

			h.crashAt(name, step, func() error { return h.oldOrNewHealthy(name, oldID, v2ref) },
				func() { h.pushed("apps/web", "1.1.0", v2dig) })

			h.e.start(deployer.New())
			h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
			h.e.drained()

			if got := outcomesOf(t, h.e.rec, v2ref); !slices.Equal(got, []string{string(events.TypeDeploymentSucceeded)}) {
				t.Errorf("outcomes for %s: %v, want exactly one deployment.succeeded", v2ref, got)
			}
			h.healthy(name, v2ref)
			after := h.inspect(name)
			if after.ID == oldID {
				t.Errorf("%s is still the old container %.12s", name, oldID)
			}
			if got, want := userConfig(after), userConfig(before); got != want {
				t.Errorf("configuration changed:\n got %s\nwant %s", got, want)
			}
			if got := h.containersNamed(name); !slices.Equal(got, []string{name}) {
				t.Errorf("containers left: %v, want only %s", got, name)
			}
		})
	}
}

// A deployer killed right after any step of the rollback of a broken
// image, then restarted, ends the deployment once: one deployment.failed
// with rolledBack, the old container itself (same id, same configuration)
// runs healthy under its name again, and nothing else is left. The old
// container is never removed on the way. The image is broken either way:
// its container runs but never becomes healthy, or it exits at once (then
// the engine may have stopped it for good before the rollback, which has
// no stop-new step to crash after).
func TestDockerCrashAfterEachRollbackStepEndsInOneRollback(t *testing.T) {
	for _, broken := range []struct {
		kind  string
		steps []string
	}{{"unhealthy", rollbackSteps}, {"exits", rollbackSteps[1:]}} {
		for _, step := range broken.steps {
			t.Run(broken.kind+"/"+step, func(t *testing.T) {
				h := newDockerHost(t, "docker", "")
				v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
				var badRef, badDig string
				if broken.kind == "exits" {
					badRef, badDig = h.image("apps/web", "1.1.0", "", true)
				} else {
					badRef, badDig = h.unhealthyImage("apps/web", "1.1.0")
				}
				name := "web-crash-" + broken.kind + "-" + step
				oldID := h.run(name, v1ref, map[string]string{"slipway.policy": "all"})
				before := h.inspect(name)

				h.crashAt(name, step, func() error { return h.exists(oldID) },
					func() { h.pushed("apps/web", "1.1.0", badDig) })

				h.e.start(deployer.New())
				failed := deploymentOf(t, h.e.rec.Wait(t, events.TypeDeploymentFailed, 1)[0])
				h.e.drained()

				if got := outcomesOf(t, h.e.rec, badRef); !slices.Equal(got, []string{string(events.TypeDeploymentFailed)}) {
					t.Errorf("outcomes for %s: %v, want exactly one deployment.failed", badRef, got)
				}
				if !failed.RolledBack {
					t.Errorf("deployment.failed: %+v, want rolledBack", failed)
				}
				h.healthy(name, v1ref)
				after := h.inspect(name)
				if after.ID != oldID {
					t.Errorf("%s is container %.12s, want the old one %.12s back", name, after.ID, oldID)
				}
				if got, want := userConfig(after), userConfig(before); got != want {
					t.Errorf("configuration changed:\n got %s\nwant %s", got, want)
				}
				if got := h.containersNamed(name); !slices.Equal(got, []string{name}) {
					t.Errorf("containers left: %v, want only %s", got, name)
				}
			})
		}
	}
}

// crashAt runs a deployer that dies right after the docker target's step
// on the container name: its context is cancelled there and the step hook
// fails, so nothing after the step is done or recorded. trigger starts the
// deployment; crashAt returns once that deployer has stopped. kept is
// checked after every step the deployer takes: the app must still be on
// the host.
func (h *dockerHost) crashAt(name, step string, kept func() error, trigger func()) {
	h.t.Helper()
	ctx, crash := context.WithCancel(context.Background())
	defer crash()
	var mu sync.Mutex
	var taken []string
	hook := func(workload, s string) error {
		if workload != name {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		taken = append(taken, s)
		if err := kept(); err != nil {
			h.t.Errorf("after step %s: %v", s, err)
		}
		if s == step {
			crash()
			return fmt.Errorf("killed after %s", s)
		}
		return nil
	}
	wait := h.e.startCtx(ctx, &deployer.Service{DockerOptions: []docker.Option{docker.WithStepHook(hook)}})
	trigger()
	select {
	case <-ctx.Done():
	case <-time.After(deadline):
		mu.Lock()
		defer mu.Unlock()
		h.t.Fatalf("the deployer never reached step %s (steps taken: %v)", step, taken)
	}
	wait()
	if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)) + len(h.e.rec.Of(events.TypeDeploymentFailed)); n != 0 {
		h.t.Fatalf("%d outcomes before the crash after %s, want none", n, step)
	}
}

// oldOrNewHealthy tells whether the app is still on the host: the old
// container exists (whether or not it runs at this step), or it is gone
// only because the new one runs healthy on newRef under the name.
func (h *dockerHost) oldOrNewHealthy(name, oldID, newRef string) error {
	if err := h.exists(oldID); err == nil || !dclient.IsErrNotFound(err) {
		return err
	}
	c, err := h.api.ContainerInspect(h.t.Context(), name)
	if err != nil {
		return fmt.Errorf("the old container is removed and %s cannot be read: %w", name, err)
	}
	if c.Config.Image != newRef || !c.State.Running || c.State.Health == nil || c.State.Health.Status != dcontainer.Healthy {
		return fmt.Errorf("the old container is removed while %s is %s, running %v, health %+v",
			name, c.Config.Image, c.State.Running, c.State.Health)
	}
	return nil
}

// exists fails unless the container id exists.
func (h *dockerHost) exists(id string) error {
	_, err := h.api.ContainerInspect(h.t.Context(), id)
	if err != nil {
		return fmt.Errorf("container %.12s: %w", id, err)
	}
	return nil
}

// unhealthyImage pushes an image whose container keeps running but never
// serves, so its health check fails: a rollback has a running replacement
// to stop (one that exits may be stopped already, and the rollback would
// skip that step).
func (h *dockerHost) unhealthyImage(repo, tag string) (ref, digest string) {
	h.t.Helper()
	img := testkit.BusyboxImage(h.t, testkit.BusyboxOptions{
		Cmd: []string{"sleep", "3600"},
		Healthcheck: &v1.HealthConfig{
			Test:     []string{"CMD", "wget", "-q", "-O-", fmt.Sprintf("http://127.0.0.1:%d/", h.port)},
			Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, Retries: 3,
		},
	})
	tagged := h.reg.Host + "/" + repo + ":" + tag
	digest = testkit.PushImage(h.t, tagged, img)
	return tagged + "@" + digest, digest
}

// outcomesOf lists the outcome events (succeeded, failed) of deployments
// to image, in order.
func outcomesOf(t *testing.T, rec *testkit.Recorder, image string) []string {
	t.Helper()
	var out []string
	for _, ev := range rec.All() {
		typ := events.Type(ev.Type())
		if typ != events.TypeDeploymentSucceeded && typ != events.TypeDeploymentFailed {
			continue
		}
		if deploymentOf(t, ev).ToImage == image {
			out = append(out, string(typ))
		}
	}
	return out
}
