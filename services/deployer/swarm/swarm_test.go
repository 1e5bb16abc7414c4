package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
	"github.com/slipway-cd/slipway/services/deployer/target/targettest"
)

// deadline bounds every wait on Swarm: convergence on a busy machine with
// vfs storage takes seconds.
const deadline = 60 * time.Second

// env is a Swarm manager, a registry the engine pulls from, and a Target
// of that manager.
type env struct {
	t    *testing.T
	host string
	reg  *testkit.Registry
	dc   *client.Client
	tg   *Target
}

func newEnv(t *testing.T) *env {
	t.Helper()
	host := testkit.SwarmManager(t)
	e := &env{t: t, host: host, reg: testkit.NewRegistry(t, testkit.RegistryOptions{})}
	e.tg = e.open()
	dc, err := dockerapi.New(config.Docker{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	e.dc = dc
	t.Cleanup(func() { _ = dc.Close() })
	return e
}

// open returns a new Target of the manager (a deployer that started
// afresh).
func (e *env) open() *Target {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tg, err := open(config.Cluster{Name: "swarm-test", Type: config.ClusterSwarm, Docker: config.Docker{Host: e.host}}, target.Options{Log: log})
	if err != nil {
		e.t.Fatal(err)
	}
	return tg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// healthy is a health check that passes at once.
var healthy = &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: 200 * time.Millisecond, Retries: 1}

// image pushes a busybox image that sleeps (version makes each one a new
// digest) and returns its reference by digest.
func (e *env) image(version string, hc *v1.HealthConfig, cmd ...string) string {
	e.t.Helper()
	if len(cmd) == 0 {
		cmd = []string{"sleep", "3600"}
	}
	img := testkit.BusyboxImage(e.t, testkit.BusyboxOptions{Cmd: cmd, Env: []string{"VERSION=" + version}, Healthcheck: hc})
	repo := e.reg.Host + "/swarm-test/app"
	return repo + "@" + testkit.PushImage(e.t, repo+":"+version, img)
}

// serviceOptions shape a test service.
type serviceOptions struct {
	unlabelled    bool
	failureAction string // update_config.failure_action; default rollback
	global        bool
}

// service creates a one-replica service on the host network running
// image, with a short monitor, and waits until its task runs. It is
// removed at cleanup.
func (e *env) service(image string, o serviceOptions) string {
	e.t.Helper()
	name := "slipway-test-" + randomHex(4)
	labels := map[string]string{policyLabel: "auto"}
	if o.unlabelled {
		labels = map[string]string{"team": "web"}
	}
	if o.failureAction == "" {
		o.failureAction = swarm.UpdateFailureActionRollback
	}
	one := uint64(1)
	grace := 100 * time.Millisecond
	restartDelay := 200 * time.Millisecond
	mode := swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}}
	if o.global {
		mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
	}
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           image,
				Labels:          map[string]string{"container-label": "not the service's"},
				StopGracePeriod: &grace,
			},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &restartDelay},
		},
		Mode: mode,
		UpdateConfig: &swarm.UpdateConfig{
			Parallelism: 1, FailureAction: o.failureAction, Monitor: time.Second,
			Order: swarm.UpdateOrderStopFirst,
		},
		RollbackConfig: &swarm.UpdateConfig{
			Parallelism: 1, FailureAction: swarm.UpdateFailureActionPause, Monitor: time.Second,
			Order: swarm.UpdateOrderStopFirst,
		},
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), deadline)
	defer cancel()
	if _, err := e.dc.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{}); err != nil {
		e.t.Fatalf("create service %s: %v", name, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := e.dc.ServiceRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
			e.t.Errorf("remove service %s: %v", name, err)
		}
	})
	e.settled(name, image)
	return name
}

// settled waits until the service runs image as wanted, with nothing in
// progress, and returns it.
func (e *env) settled(name, image string) target.Workload {
	e.t.Helper()
	return e.until(name, func(w target.Workload) bool { return w.Image == image && w.Settled() })
}

// until reads the service until ok says yes or the deadline passes.
func (e *env) until(name string, ok func(target.Workload) bool) target.Workload {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), deadline)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var w target.Workload
	var err error
	for {
		if w, err = e.tg.Get(ctx, name); err == nil && ok(w) {
			return w
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			e.t.Fatalf("service %s: condition not met within %s; last read %+v, error %v", name, deadline, w, err)
		}
	}
}

func (e *env) inspect(name string) swarm.Service {
	e.t.Helper()
	s, _, err := e.dc.ServiceInspectWithRaw(e.t.Context(), name, swarm.ServiceInspectOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) get(name string) target.Workload {
	e.t.Helper()
	w, err := e.tg.Get(e.t.Context(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *env) update(w target.Workload, image string) target.Rollout {
	e.t.Helper()
	r, err := e.tg.Update(e.t.Context(), w, image, target.UpdateOptions{Deadline: time.Now().Add(deadline)})
	if err != nil {
		e.t.Fatalf("update %s to %s: %v", w.ID, image, err)
	}
	return r
}

func (e *env) await(name, rolloutID string) target.Outcome {
	e.t.Helper()
	o, timedOut, err := e.tg.Await(e.t.Context(), name, rolloutID, time.Now().Add(deadline))
	if err != nil || timedOut {
		e.t.Fatalf("await %s rollout %s: timed out %t, error %v", name, rolloutID, timedOut, err)
	}
	return o
}

// runningImages are the images of the service's containers that run.
func (e *env) runningImages(name string) []string {
	e.t.Helper()
	tasks, err := e.tg.tasks(e.t.Context(), e.inspect(name).ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var images []string
	for _, tasks := range tasks {
		for _, tk := range tasks {
			if tk.Status.State == swarm.TaskStateRunning {
				images = append(images, tk.Spec.ContainerSpec.Image)
			}
		}
	}
	return images
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestUpdateRollsTheServiceOntoTheNewImage(t *testing.T) {
	e := newEnv(t)
	v1img, v2img := e.image("1", healthy), e.image("2", healthy)
	name := e.service(v1img, serviceOptions{})

	w := e.get(name)
	if w.Image != v1img || w.Labels[policyLabel] != "auto" || w.Labels["container-label"] != "" {
		t.Fatalf("workload %+v: want image %s and the service's labels only", w, v1img)
	}
	if w.Wanted != 1 || w.Running != 1 || w.Healthy != 1 || len(w.Nodes) != 1 || len(w.Rollouts) != 0 {
		t.Fatalf("workload %+v: want one task running and healthy on one node, no rollout", w)
	}
	r := e.update(w, v2img)
	if r.ID == "" || r.ID == w.Revision || r.Revision != r.ID {
		t.Fatalf("rollout %+v after revision %s: want the new version as id and revision", r, w.Revision)
	}
	if o := e.await(name, r.ID); !o.Success {
		t.Fatalf("await: %+v, want success", o)
	}
	after := e.get(name)
	if after.Image != v2img || !after.Settled() {
		t.Fatalf("after the update: %+v, want %s settled", after, v2img)
	}
	if got := e.runningImages(name); len(got) != 1 || got[0] != v2img {
		t.Fatalf("running tasks' images %v, want [%s]", got, v2img)
	}
	if s := e.inspect(name); s.Spec.UpdateConfig.FailureAction != swarm.UpdateFailureActionRollback || s.Spec.UpdateConfig.Monitor != time.Second {
		t.Fatalf("update_config %+v: the service's own settings must stay", s.Spec.UpdateConfig)
	}
}

// rollBack has the target roll the service back to image and awaits that.
func (e *env) rollBack(name, rolloutID, image string) {
	e.t.Helper()
	rb, err := e.tg.RollBack(e.t.Context(), name, rolloutID, image)
	if err != nil {
		e.t.Fatalf("roll back %s: %v", name, err)
	}
	if o := e.await(name, rb.ID); !o.Success {
		e.t.Fatalf("await rollback %s: %+v, want success", rb.ID, o)
	}
	if w := e.get(name); w.Image != image || !w.Settled() {
		e.t.Fatalf("after the rollback: %+v, want %s settled", w, image)
	}
	if got := e.runningImages(name); len(got) != 1 || got[0] != image {
		e.t.Fatalf("running tasks' images %v, want [%s]", got, image)
	}
}

func TestBrokenImageIsRolledBackBySwarmAndAwaitFails(t *testing.T) {
	e := newEnv(t)
	good, broken := e.image("1", healthy), e.image("2", nil, "false")
	name := e.service(good, serviceOptions{failureAction: swarm.UpdateFailureActionRollback})

	r := e.update(e.get(name), broken)
	o := e.await(name, r.ID)
	if o.Success || o.Gone || !strings.Contains(o.Reason, "rolled the update back") {
		t.Fatalf("await: %+v, want a failure saying Swarm rolled back", o)
	}
	if st := state(e.inspect(name)); st != swarm.UpdateStateRollbackStarted && st != swarm.UpdateStateRollbackCompleted {
		t.Fatalf("update status %q, want Swarm's own rollback", st)
	}
	// Deploying the image Swarm brought back is following that rollback.
	again, err := e.tg.Update(t.Context(), e.get(name), good, target.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := e.await(name, again.ID); !o.Success {
		t.Fatalf("await the update to the image Swarm rolled back to: %+v, want success", o)
	}
	e.rollBack(name, r.ID, good)
}

func TestPausedUpdateIsRolledBackWithSwarmsRollback(t *testing.T) {
	e := newEnv(t)
	unhealthy := &v1.HealthConfig{Test: []string{"CMD", "false"}, Interval: 200 * time.Millisecond, Retries: 1}
	good, broken := e.image("1", healthy), e.image("2", unhealthy)
	name := e.service(good, serviceOptions{failureAction: swarm.UpdateFailureActionPause})

	r := e.update(e.get(name), broken)
	o := e.await(name, r.ID)
	if o.Success || o.Gone || !strings.Contains(o.Reason, "paused") {
		t.Fatalf("await: %+v, want a failure saying Swarm paused the update", o)
	}
	if w := e.get(name); w.Image != broken || len(w.Rollouts) != 0 {
		t.Fatalf("paused update: %+v, want the broken image in the spec and no rollout in progress", w)
	}
	e.rollBack(name, r.ID, good)
	if s := e.inspect(name); state(s) != swarm.UpdateStateRollbackCompleted || s.PreviousSpec == nil || specImage(*s.PreviousSpec) != broken {
		t.Fatalf("update status %+v, previous spec %+v: want Swarm's rollback from %s", s.UpdateStatus, s.PreviousSpec, broken)
	}
}

// A service whose update_config does not roll back (here: the new task
// never turns healthy, so Swarm waits) still gets Slipway's rollback when
// the deployment times out.
func TestTimedOutUpdateIsRolledBackWithoutFailureActionRollback(t *testing.T) {
	e := newEnv(t)
	// The first check comes after an hour: the task stays starting.
	neverChecked := &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Hour}
	good, stuck := e.image("1", healthy), e.image("2", neverChecked)
	name := e.service(good, serviceOptions{failureAction: swarm.UpdateFailureActionPause})

	r := e.update(e.get(name), stuck)
	// The update is under way once Swarm's updater took it on.
	e.until(name, func(w target.Workload) bool { return state(e.inspect(name)) == swarm.UpdateStateUpdating })
	o, timedOut, err := e.tg.Await(t.Context(), name, r.ID, time.Now().Add(3*time.Second))
	if err != nil || !timedOut {
		t.Fatalf("await: %+v, timed out %t, error %v; want a timeout", o, timedOut, err)
	}
	if w := e.get(name); len(w.Rollouts) != 1 || w.Settled() {
		t.Fatalf("stuck update: %+v, want it in progress", w)
	}
	e.rollBack(name, r.ID, good)
}

func TestStaleRevisionIsAConflictAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	v1img, v2img := e.image("1", healthy), e.image("2", healthy)
	name := e.service(v1img, serviceOptions{})
	w := e.get(name)

	// Somebody else changes the service after the deployer read it.
	s := e.inspect(name)
	s.Spec.Labels["team"] = "web"
	if _, err := e.dc.ServiceUpdate(t.Context(), s.ID, s.Version, s.Spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.inspect(name)
	_, err := e.tg.Update(t.Context(), w, v2img, target.UpdateOptions{})
	if !errors.Is(err, target.ErrConflict) {
		t.Fatalf("update with revision %s after a change: %v, want ErrConflict", w.Revision, err)
	}
	after := e.inspect(name)
	if specImage(after.Spec) != v1img || after.Version.Index != before.Version.Index {
		t.Fatalf("service after the refused update: image %s version %d, want %s at %d", specImage(after.Spec), after.Version.Index, v1img, before.Version.Index)
	}
}

// The deployer crashed after its update call: a deployer started afresh
// finds the image set, and its Update follows that update instead of
// making a second one.
func TestUpdateAfterACrashContinuesTheFirst(t *testing.T) {
	e := newEnv(t)
	v1img, v2img := e.image("1", healthy), e.image("2", healthy)
	name := e.service(v1img, serviceOptions{})
	w := e.get(name)
	e.update(w, v2img)

	fresh := e.open()
	seen, err := fresh.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Image != v2img {
		t.Fatalf("after the crash: image %s, want %s already set", seen.Image, v2img)
	}
	// Called again with the workload as first read (its revision stale).
	r, err := fresh.Update(t.Context(), w, v2img, target.UpdateOptions{})
	if err != nil {
		t.Fatalf("update again: %v", err)
	}
	if s := e.inspect(name); s.PreviousSpec == nil || specImage(*s.PreviousSpec) != v1img {
		t.Fatalf("previous spec after the second call: %+v, want the first update's (image %s): no second update", s.PreviousSpec, v1img)
	}
	o, timedOut, err := fresh.Await(t.Context(), name, r.ID, time.Now().Add(deadline))
	if err != nil || timedOut || !o.Success {
		t.Fatalf("await: %+v, timed out %t, error %v; want success", o, timedOut, err)
	}
	e.settled(name, v2img)
}

func TestServiceWithoutTheLabelIsListedButNeverTouched(t *testing.T) {
	e := newEnv(t)
	v1img, v2img := e.image("1", healthy), e.image("2", healthy)
	labelled := e.service(v1img, serviceOptions{})
	unlabelled := e.service(v1img, serviceOptions{unlabelled: true})

	list, err := e.tg.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range list {
		names = append(names, w.ID)
	}
	// Both, for the inventory; only the label makes one Slipway's.
	if !slices.Contains(names, labelled) || !slices.Contains(names, unlabelled) {
		t.Fatalf("listed %v: want %s and %s", names, labelled, unlabelled)
	}
	for _, w := range list {
		if _, ok := w.Labels[policyLabel]; w.ID == unlabelled && (ok || w.Image != v1img) {
			t.Fatalf("the unlabelled service is listed as %+v", w)
		}
	}
	w := e.get(unlabelled)
	before := e.inspect(unlabelled)
	if _, err := e.tg.Update(t.Context(), w, v2img, target.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), policyLabel) {
		t.Fatalf("update of an unlabelled service: %v, want a refusal naming %s", err, policyLabel)
	}
	if _, err := e.tg.RollBack(t.Context(), unlabelled, w.Revision, v1img); err == nil || !strings.Contains(err.Error(), policyLabel) {
		t.Fatalf("rollback of an unlabelled service: %v, want a refusal naming %s", err, policyLabel)
	}
	if after := e.inspect(unlabelled); after.Version.Index != before.Version.Index || specImage(after.Spec) != v1img {
		t.Fatalf("unlabelled service changed: version %d → %d, image %s", before.Version.Index, after.Version.Index, specImage(after.Spec))
	}
}

func TestRollBackWithNoUpdateInProgressIsOver(t *testing.T) {
	e := newEnv(t)
	v1img, v2img := e.image("1", healthy), e.image("2", healthy)
	name := e.service(v1img, serviceOptions{})
	r := e.update(e.get(name), v2img)
	if o := e.await(name, r.ID); !o.Success {
		t.Fatalf("await: %+v", o)
	}
	before := e.inspect(name)
	if _, err := e.tg.RollBack(t.Context(), name, r.ID, v1img); !errors.Is(err, target.ErrOver) {
		t.Fatalf("rollback of a completed update: %v, want ErrOver", err)
	}
	if after := e.inspect(name); specImage(after.Spec) != v2img || after.Version.Index != before.Version.Index {
		t.Fatalf("service changed by a refused rollback: %s at %d", specImage(after.Spec), after.Version.Index)
	}
}

func TestGlobalServiceWantsATaskPerNode(t *testing.T) {
	e := newEnv(t)
	img := e.image("1", healthy)
	name := e.service(img, serviceOptions{global: true})
	nodes, err := e.dc.NodeList(t.Context(), swarm.NodeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := e.get(name)
	if w.Wanted != len(nodes) || w.Running != len(nodes) || len(w.Nodes) != len(nodes) || w.Nodes[0] != nodes[0].Description.Hostname {
		t.Fatalf("global service: %+v, want one task on each of %d nodes (%s)", w, len(nodes), nodes[0].Description.Hostname)
	}
}

func TestWatchReportsServiceChangesAfterAResync(t *testing.T) {
	e := newEnv(t)
	img := e.image("1", healthy)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := make(chan target.Change, 64)
	done := make(chan struct{})
	go func() { defer close(done); e.tg.Watch(ctx, changes) }()
	next := func(ok func(target.Change) bool, what string) {
		t.Helper()
		nextChange(t, changes, ok, what)
	}
	next(func(ch target.Change) bool { return ch.Resync }, "resync on connect")
	name := e.service(img, serviceOptions{})
	next(func(ch target.Change) bool { return ch.Refresh == name }, "refresh of the new service")
	if err := e.dc.ServiceRemove(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	next(func(ch target.Change) bool { return ch.Removed == name }, "removal")
	cancel()
	<-done
}

func TestOpenDoesNotNeedTheManager(t *testing.T) {
	cl := config.Cluster{Name: "down", Type: config.ClusterSwarm, Docker: config.Docker{Host: "unix://" + t.TempDir() + "/docker.sock"}}
	tg, err := Open(cl, target.Options{})
	if err != nil {
		t.Fatalf("open with the manager down: %v", err)
	}
	if _, err := tg.List(t.Context()); err == nil {
		t.Fatal("list with the manager down: no error")
	}
	if tg.Endpoint() != cl.Docker.Host {
		t.Fatalf("endpoint %q, want %q", tg.Endpoint(), cl.Docker.Host)
	}
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		docker config.Docker
		want   []string // key paths with a problem
	}{
		{"valid", config.Docker{Host: "unix:///var/run/docker.sock"}, nil},
		{"pinned new enough", config.Docker{Host: "tcp://manager:2375", APIVersion: "1.41"}, nil},
		{"no host", config.Docker{}, []string{"clusters[0].docker.host"}},
		{"too old for rollback", config.Docker{Host: "tcp://manager:2375", APIVersion: "1.25"}, []string{"clusters[0].docker.apiVersion"}},
		{"grace is for docker", config.Docker{Host: "tcp://manager:2375", Grace: time.Second}, []string{"clusters[0].docker.grace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p config.Problems
			CheckConfig(config.Cluster{Name: "s", Type: config.ClusterSwarm, Docker: tc.docker}, "clusters[0]", &p)
			var got []string
			for _, pr := range p {
				got = append(got, pr.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems %v, want at %v", p, tc.want)
			}
		})
	}
}

// beforeUpdate is a transport to the engine that runs hook before
// forwarding a service update.
type beforeUpdate struct {
	next http.RoundTripper
	hook func()
}

func (b beforeUpdate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/update") && strings.Contains(r.URL.Path, "/services/") {
		b.hook()
	}
	return b.next.RoundTrip(r)
}

// Somebody else's change between the target's read and its update call
// makes Swarm refuse the update as out of sequence: a conflict.
func TestChangeDuringTheUpdateCallIsAConflict(t *testing.T) {
	e := newEnv(t)
	v1img, v2img := e.image("1", healthy), e.image("2", healthy)
	name := e.service(v1img, serviceOptions{})

	socket, ok := strings.CutPrefix(e.host, "unix://")
	if !ok {
		t.Skipf("this test dials the engine's unix socket; DOCKER_HOST is %s", e.host)
	}
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", socket)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	hooked := false
	hc := &http.Client{Transport: beforeUpdate{next: tr, hook: func() {
		hooked = true
		s := e.inspect(name)
		s.Spec.Labels["team"] = "web"
		if _, err := e.dc.ServiceUpdate(t.Context(), s.ID, s.Version, s.Spec, swarm.ServiceUpdateOptions{}); err != nil {
			t.Errorf("the other change: %v", err)
		}
	}}}
	tg, err := open(config.Cluster{Name: "swarm-test", Docker: config.Docker{Host: e.host}}, target.Options{}, dockerapi.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	w := e.get(name)
	_, err = tg.Update(t.Context(), w, v2img, target.UpdateOptions{})
	if !hooked || !errors.Is(err, target.ErrConflict) {
		t.Fatalf("update raced by another change (made: %t): %v, want ErrConflict", hooked, err)
	}
	if s := e.inspect(name); specImage(s.Spec) != v1img || s.Spec.Labels["team"] != "web" {
		t.Fatalf("service after the refused update: image %s, labels %v; want %s and the other change", specImage(s.Spec), s.Spec.Labels, v1img)
	}
}

// cutProxy forwards TCP connections to the engine's unix socket and can
// cut every connection open.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, socket string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", socket)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func TestWatchResyncsAfterTheStreamIsCut(t *testing.T) {
	e := newEnv(t)
	socket, ok := strings.CutPrefix(e.host, "unix://")
	if !ok {
		t.Skipf("this test proxies the engine's unix socket; DOCKER_HOST is %s", e.host)
	}
	p := newCutProxy(t, socket)
	tg, err := open(config.Cluster{Name: "swarm-test", Docker: config.Docker{Host: "tcp://" + p.ln.Addr().String()}}, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	changes := make(chan target.Change, 64)
	done := make(chan struct{})
	go func() { defer close(done); tg.Watch(ctx, changes) }()
	defer func() { cancel(); <-done }()
	next := func(ok func(target.Change) bool, what string) {
		t.Helper()
		nextChange(t, changes, ok, what)
	}
	resync := func(ch target.Change) bool { return ch.Resync }
	next(resync, "resync on connect")
	p.cut()
	next(resync, "resync after the reconnect")
	// And the new stream delivers.
	name := e.service(e.image("1", healthy), serviceOptions{})
	next(func(ch target.Change) bool { return ch.Refresh == name }, "refresh after the reconnect")
}

// nextChange reads changes until one satisfies ok.
func nextChange(t *testing.T, changes <-chan target.Change, ok func(target.Change) bool, what string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case ch := <-changes:
			if ok(ch) {
				return
			}
		case <-timer.C:
			t.Fatalf("no %s within %s", what, deadline)
		}
	}
}

// A Target fresh from Open is used at once by several goroutines (the
// deployer's watch, its resync and a deployment): the Docker client
// negotiates its API version on its first request and encodes filters
// and update requests with it, so the first calls must not race on it.
func TestAFreshTargetIsSafeToUseFromSeveralGoroutines(t *testing.T) {
	e := newEnv(t)
	name := e.service(e.image("1.0.0", healthy), serviceOptions{})
	targettest.UsedAtOnce(t, func() target.Target { return e.open() }, name, "1")
}
