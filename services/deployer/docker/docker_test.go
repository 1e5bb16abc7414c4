package docker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/target"
	"github.com/slipway-cd/slipway/services/deployer/target/targettest"
)

// userContainer is a container as a user would run one, with something
// set in every part of its configuration Slipway must carry over.
func (f *fixture) userContainer(ref string, health *container.HealthConfig) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Cmd:          f.httpd(),
		Env:          []string{"APP_MODE=test", "GREETING=hello world"},
		Labels:       map[string]string{LabelPolicy: "all", "team": "web"},
		Healthcheck:  health,
		ExposedPorts: nat.PortSet{"8080/tcp": {}},
		// busybox httpd as pid 1 ignores SIGTERM: no need to wait 10s.
		StopTimeout: &stopTimeout,
	}
	hc := &container.HostConfig{
		NetworkMode:   "host",
		Binds:         []string{f.t.TempDir() + ":/data:ro"},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 2},
		PortBindings:  nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: f.port}}},
		Resources:     container.Resources{Memory: 64 << 20},
		LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}},
	}
	return cfg, hc
}

var stopTimeout = 1

func TestUpdateRecreatesOnTheNewDigestWithTheUsersConfiguration(t *testing.T) {
	f := newFixture(t)
	v1ref, v2ref := f.image("1", testkit.BusyboxOptions{}), f.image("2", testkit.BusyboxOptions{})
	cfg, hc := f.userContainer(v1ref, f.healthcheck("/"))
	before := f.run(v1ref, cfg, hc)
	tg := f.target()

	changes := make(chan target.Change, 256)
	wctx, stop := context.WithCancel(t.Context())
	defer stop()
	go tg.Watch(wctx, changes)
	if c := <-changes; !c.Resync {
		t.Fatalf("Watch sent %+v first, want Resync", c)
	}

	r, o := f.deploy(tg, v2ref)
	if !o.Success {
		t.Fatalf("Await: %+v, want success", o)
	}
	after := f.inspect(f.name)
	if after.ID != r.ID || after.ID == before.ID {
		t.Fatalf("container %s is %s; rollout %s, old %s", f.name, short(after.ID), short(r.ID), short(before.ID))
	}
	if after.Config.Image != v2ref {
		t.Errorf("image %q, want %q", after.Config.Image, v2ref)
	}
	if after.State.Health == nil || after.State.Health.Status != container.Healthy {
		t.Errorf("health %+v, want healthy", after.State.Health)
	}
	sameUserSet(t, before, after)
	// What the image brought comes from the new image, not the old one.
	if !slices.Contains(after.Config.Env, "IMAGE_VERSION=2") {
		t.Errorf("env %v lacks the new image's IMAGE_VERSION=2", after.Config.Env)
	}
	if after.Config.Hostname != before.Config.Hostname {
		t.Errorf("hostname %q, before %q", after.Config.Hostname, before.Config.Hostname)
	}
	if got := after.Config.Labels[LabelReplaces]; got != before.ID {
		t.Errorf("label %s = %q, want the old id %s", LabelReplaces, got, before.ID)
	}
	if page, err := f.get("/"); err != nil || page != "2" {
		t.Errorf("the workload serves %q (%v), want the new image's page", page, err)
	}
	if f.exists(before.ID[:12]) || slices.ContainsFunc(f.containers(), func(n string) bool { return n != f.name }) {
		t.Errorf("containers left: %v (the old one must be removed)", f.containers())
	}
	w, err := tg.Get(t.Context(), f.name)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Settled() || w.Image != v2ref || w.Revision != after.ID || len(w.Nodes) != 1 {
		t.Errorf("workload %+v, want settled on %s", w, v2ref)
	}

	// Watch saw the recreate as changes of the workload, never of a
	// temporary container.
	testkit.WaitFor(t, "a refresh of the workload from Watch", func() bool {
		for {
			select {
			case c := <-changes:
				if isTemporary(c.Refresh) {
					t.Errorf("Watch named a temporary container: %+v", c)
				}
				if c.Refresh == f.name {
					return true
				}
			default:
				return false
			}
		}
	})
}

func TestAFailedUpdateIsRolledBackToTheSameContainer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broken func(f *fixture) string
		health bool // the container has a health check of the image's
		reason []string
	}{{
		name: "exits at once",
		broken: func(f *fixture) string {
			return f.image("exits", testkit.BusyboxOptions{Entrypoint: []string{"sh", "-c", "echo cannot read /etc/app.conf >&2; exit 3"}})
		},
		reason: []string{"exit code 3", "cannot read /etc/app.conf"},
	}, {
		name:   "health check fails",
		health: true,
		broken: func(f *fixture) string {
			return f.image("sick", testkit.BusyboxOptions{Healthcheck: f.imageHealthcheck("/missing")})
		},
		reason: []string{"unhealthy", "404"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var o testkit.BusyboxOptions
			if tc.health {
				o.Healthcheck = f.imageHealthcheck("/")
			}
			good := f.image("1", o)
			cfg, hc := f.userContainer(good, nil)
			hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
			f.run(good, cfg, hc)
			if tc.health {
				f.waitHealthy()
			}
			before := f.inspect(f.name)
			tg := f.target()

			_, out := f.deploy(tg, tc.broken(f))
			if out.Success {
				t.Fatalf("Await reported success for a broken image")
			}
			t.Logf("reason: %s", out.Reason)
			for _, want := range tc.reason {
				if !strings.Contains(out.Reason, want) {
					t.Errorf("reason %q does not say %q", out.Reason, want)
				}
			}
			if !tc.health {
				// The image's health check was not pinned on the new
				// container either way; here its user had none.
				if hc := f.inspect(f.name).Config.Healthcheck; hc != nil {
					t.Errorf("the new container got a health check %+v", hc)
				}
			}
			w, err := tg.Get(t.Context(), f.name)
			if err != nil || len(w.Rollouts) == 0 {
				t.Fatalf("Get %+v, %v: want the recreate in progress", w, err)
			}
			rb, err := tg.RollBack(t.Context(), f.name, w.Rollouts[0], before.Config.Image)
			if err != nil {
				t.Fatal(err)
			}
			if rb.ID != before.ID {
				t.Errorf("rollback follows %s, want the old container %s", short(rb.ID), short(before.ID))
			}
			if o := f.await(tg, rb.ID); !o.Success {
				t.Fatalf("Await of the rollback: %+v", o)
			}
			f.restored(before)
			if _, err := tg.RollBack(t.Context(), f.name, rb.ID, before.Config.Image); !errors.Is(err, target.ErrOver) {
				t.Errorf("RollBack with nothing to undo: %v, want ErrOver", err)
			}
		})
	}
}

// imageHealthcheck is an image's HEALTHCHECK probing the workload at path.
func (f *fixture) imageHealthcheck(path string) *v1.HealthConfig {
	h := f.healthcheck(path)
	return &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, Retries: h.Retries}
}

func (f *fixture) waitHealthy() {
	f.t.Helper()
	testkit.WaitFor(f.t, f.name+" healthy", func() bool {
		h := f.inspect(f.name).State.Health
		return h != nil && h.Status == container.Healthy
	})
}

// restored checks that the host holds exactly the container it had,
// running, and nothing else of the workload.
func (f *fixture) restored(before container.InspectResponse) {
	f.t.Helper()
	after := f.inspect(f.name)
	sameContainer(f.t, before, after)
	if !after.State.Running {
		f.t.Errorf("%s is %s, want running", f.name, after.State.Status)
	}
	if got := f.containers(); !slices.Equal(got, []string{f.name}) {
		f.t.Errorf("containers %v, want only %s", got, f.name)
	}
	if page, err := f.get("/"); err != nil || page != "1" {
		f.t.Errorf("the workload serves %q (%v), want the old page", page, err)
	}
}

// forwardSteps are the steps of a recreate, in order; remove-old is
// Await's.
var forwardSteps = []string{stepPull, stepCreate, stepStopOld, stepRenameOld, stepRenameNew, stepStartNew, stepRemoveOld}

func TestACrashedUpdateIsCarriedOnAfterEachStep(t *testing.T) {
	for _, step := range forwardSteps {
		t.Run(step, func(t *testing.T) {
			f := newFixture(t)
			good1, good2 := f.image("1", testkit.BusyboxOptions{}), f.image("2", testkit.BusyboxOptions{})
			cfg, hc := f.userContainer(good1, nil)
			before := f.run(good1, cfg, hc)

			crashing := f.crashAt(step)
			w, err := crashing.Get(t.Context(), f.name)
			if err != nil {
				t.Fatal(err)
			}
			r, err := crashing.Update(t.Context(), w, good2, target.UpdateOptions{})
			if step != stepRemoveOld {
				if !errors.Is(err, errCrash) {
					t.Fatalf("Update: %v, want the crash after %s", err, step)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := crashing.Await(t.Context(), f.name, r.ID, time.Now().Add(waitFor)); !errors.Is(err, errCrash) {
					t.Fatalf("Await: %v, want the crash after %s", err, step)
				}
			}

			// A restarted deployer sees the workload, with the recreate in
			// progress once the host shows one, and no temporary workloads.
			fresh := f.target()
			w, err = fresh.Get(t.Context(), f.name)
			if err != nil {
				t.Fatalf("Get after a crash after %s: %v", step, err)
			}
			if inProgress := step != stepPull && step != stepRemoveOld; inProgress != (len(w.Rollouts) > 0) {
				t.Errorf("after %s: Rollouts %v", step, w.Rollouts)
			}
			f.listsOnlyTheWorkload(fresh)

			var o target.Outcome
			if step == stepRemoveOld {
				// The deployer recorded the rollout and follows it again.
				o = f.await(fresh, r.ID)
			} else {
				_, o = f.deploy(fresh, good2)
			}
			if !o.Success {
				t.Fatalf("Await after resuming: %+v", o)
			}
			after := f.inspect(f.name)
			if after.Config.Image != good2 || !after.State.Running || after.ID == before.ID {
				t.Errorf("after resuming: %s runs %s (%s), running %t", f.name, after.Config.Image, short(after.ID), after.State.Running)
			}
			sameUserSet(t, before, after)
			if got := f.containers(); !slices.Equal(got, []string{f.name}) {
				t.Errorf("containers %v, want only %s", got, f.name)
			}
			if page, err := f.get("/"); err != nil || page != "2" {
				t.Errorf("serves %q (%v)", page, err)
			}
		})
	}
}

// rollbackSteps are the steps of a rollback, in order.
var rollbackSteps = []string{stepStopNew, stepRenameFail, stepRestoreOld, stepStartOld, stepRemoveFail}

func TestACrashedRollBackIsCarriedOnAfterEachStep(t *testing.T) {
	for _, step := range rollbackSteps {
		t.Run(step, func(t *testing.T) {
			f := newFixture(t)
			good := f.image("1", testkit.BusyboxOptions{})
			// Broken without exiting, so that stopping it is a step.
			sick := f.image("sick", testkit.BusyboxOptions{Healthcheck: f.imageHealthcheck("/missing")})
			cfg, hc := f.userContainer(good, nil)
			before := f.run(good, cfg, hc)
			tg := f.target()
			r, o := f.deploy(tg, sick)
			if o.Success {
				t.Fatal("a sick image succeeded")
			}

			if _, err := f.crashAt(step).RollBack(t.Context(), f.name, r.ID, good); !errors.Is(err, errCrash) {
				t.Fatalf("RollBack: %v, want the crash after %s", err, step)
			}
			fresh := f.target()
			w, err := fresh.Get(t.Context(), f.name)
			if err != nil {
				t.Fatalf("Get after a crash after %s: %v", step, err)
			}
			if done := step == stepRemoveFail; done == (len(w.Rollouts) > 0) {
				t.Errorf("after %s: Rollouts %v", step, w.Rollouts)
			}
			f.listsOnlyTheWorkload(fresh)

			// The deployer, still rolling back, calls RollBack again.
			rb, err := fresh.RollBack(t.Context(), f.name, r.ID, good)
			if step == stepRemoveFail {
				if !errors.Is(err, target.ErrOver) {
					t.Fatalf("RollBack after it was done: %v, want ErrOver", err)
				}
				rb.ID = before.ID
			} else if err != nil {
				t.Fatal(err)
			}
			if o := f.await(fresh, rb.ID); !o.Success {
				t.Fatalf("Await of the rollback: %+v", o)
			}
			f.restored(before)
		})
	}
}

func (f *fixture) listsOnlyTheWorkload(tg *Target) {
	f.t.Helper()
	ws, err := tg.List(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, w := range ws {
		if strings.HasPrefix(w.ID, f.name) {
			ids = append(ids, w.ID)
		}
	}
	if !slices.Equal(ids, []string{f.name}) {
		f.t.Errorf("List has %v, want only %s", ids, f.name)
	}
}

func TestAContainerWithoutThePolicyLabelIsListedButNeverTouched(t *testing.T) {
	f := newFixture(t)
	good1, good2 := f.image("1", testkit.BusyboxOptions{}), f.image("2", testkit.BusyboxOptions{})
	cfg, hc := f.userContainer(good1, nil)
	delete(cfg.Labels, LabelPolicy)
	before := f.run(good1, cfg, hc)
	tg := f.target()

	// Listed, for the inventory, as it runs and without the label.
	ws, err := tg.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, w := range ws {
		if w.ID != f.name {
			continue
		}
		listed++
		if _, labelled := w.Labels[LabelPolicy]; labelled || w.Image != good1 || w.Revision != before.ID {
			t.Errorf("List reports %+v, want %s unlabelled at %s", w, good1, before.ID)
		}
	}
	if listed != 1 {
		t.Errorf("List has the unlabelled container %d times, want once", listed)
	}
	if w, err := tg.Get(t.Context(), f.name); err != nil || w.Image != good1 {
		t.Errorf("Get: %+v, %v; want the container at %s", w, err, good1)
	}
	w := target.Workload{ID: f.name, Revision: before.ID}
	if _, err := tg.Update(t.Context(), w, good2, target.UpdateOptions{}); !errors.Is(err, target.ErrNotFound) {
		t.Errorf("Update: %v, want ErrNotFound", err)
	}
	if _, err := tg.RollBack(t.Context(), f.name, before.ID, good1); !errors.Is(err, target.ErrNotFound) {
		t.Errorf("RollBack: %v, want ErrNotFound", err)
	}
	after := f.inspect(f.name)
	sameContainer(t, before, after)
	if !after.State.Running || !slices.Equal(f.containers(), []string{f.name}) {
		t.Errorf("the container was touched: running %t, containers %v", after.State.Running, f.containers())
	}
}

func TestOpenSucceedsWhileTheHostIsDownAndListSaysWhy(t *testing.T) {
	cl := config.Cluster{Name: "down", Type: config.ClusterDocker, Docker: config.Docker{Host: "tcp://" + testkit.FreeAddr(t)}}
	tg, err := Open(cl, target.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := tg.List(t.Context()); err == nil {
		t.Fatal("List succeeded against a host that is down")
	}
}

func TestCheckConfigNamesTheDockerKeys(t *testing.T) {
	var p config.Problems
	CheckConfig(config.Cluster{Type: config.ClusterDocker, Docker: config.Docker{Host: "http://x", APIVersion: "1.19"}}, "clusters[2]", &p)
	var paths []string
	for _, x := range p {
		paths = append(paths, x.Path)
	}
	if !slices.Contains(paths, "clusters[2].docker.host") || !slices.Contains(paths, "clusters[2].docker.apiVersion") {
		t.Errorf("problems %v", p)
	}
	p = nil
	CheckConfig(config.Cluster{Type: config.ClusterDocker, Docker: config.Docker{Host: "unix:///var/run/docker.sock", APIVersion: "1.25"}}, "clusters[0]", &p)
	if len(p) != 0 {
		t.Errorf("a good block: %v", p)
	}
}

func TestAnUpdateOvertakenBeforeItWasConfirmedRecreatesFromTheRunningOne(t *testing.T) {
	f := newFixture(t)
	good1, good2, good3 := f.image("1", testkit.BusyboxOptions{}), f.image("2", testkit.BusyboxOptions{}), f.image("3", testkit.BusyboxOptions{})
	cfg, hc := f.userContainer(good1, f.healthcheck("/"))
	before := f.run(good1, cfg, hc)
	tg := f.target()
	w, err := tg.Get(t.Context(), f.name)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tg.Update(t.Context(), w, good2, target.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A newer image comes before the deployer awaited the first.
	if w, err = tg.Get(t.Context(), f.name); err != nil {
		t.Fatal(err)
	}
	r3, err := tg.Update(t.Context(), w, good3, target.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := f.await(tg, r3.ID); !o.Success {
		t.Fatalf("Await: %+v", o)
	}
	after := f.inspect(f.name)
	if after.Config.Image != good3 || after.Config.Labels[LabelReplaces] != r2.ID {
		t.Errorf("%s runs %s replacing %s, want %s replacing %s", f.name, after.Config.Image, after.Config.Labels[LabelReplaces], good3, short(r2.ID))
	}
	sameUserSet(t, before, after)
	if got := f.containers(); !slices.Equal(got, []string{f.name}) {
		t.Errorf("containers %v, want only %s", got, f.name)
	}
}

// A fresh Target is used from several goroutines at once, as the deployer
// does (its watch, its resync, a deployment's Await): the client's first
// request negotiates the API version, which none of them may read before.
// The race detector catches a read that comes first.
func TestAFreshTargetIsSafeToUseFromSeveralGoroutines(t *testing.T) {
	f := newFixture(t)
	img := f.image("1.0.0", testkit.BusyboxOptions{})
	stop := 1
	c := f.run(img, &container.Config{Cmd: []string{"sleep", "3600"}, Labels: map[string]string{LabelPolicy: "all"}, StopTimeout: &stop}, &container.HostConfig{})
	targettest.UsedAtOnce(t, func() target.Target { return f.target() }, f.name, c.ID)
}
