package deployer_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	dimage "github.com/docker/docker/api/types/image"
	dclient "github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// dockerHost is a real Docker engine, a real registry it pulls from, and
// NATS, for the deployer's end-to-end tests on the docker platform.
type dockerHost struct {
	t    testing.TB
	reg  *testkit.Registry
	host string // DOCKER_HOST
	api  *dclient.Client
	e    *env
	port int // the port the test app's httpd listens on (host network)
}

func newDockerHost(t testing.TB, platform, clusterExtra string) *dockerHost {
	t.Helper()
	host := testkit.DockerHost(t)
	api, err := dclient.NewClientWithOpts(dclient.WithHost(host), dclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	ns := testkit.NATS(t)
	// The grace after a stop is the docker platform's; a swarm cluster
	// refuses it (Swarm's update_config governs).
	grace := ""
	if platform == config.ClusterDocker {
		grace = ", grace: 1s"
	}
	_, js := ns.Connect(t)
	cfg, err := config.Parse(fmt.Appendf(nil, `
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q } } ]
deployer: { syncInterval: 1m, reconcileInterval: 200ms, pollInterval: 100ms }
clusters:
  - name: host1
    environment: dev
    type: %s
    docker: { host: %q%s }
    deploy: { timeout: 45s }
    %s
`, ns.URL, reg.Host, platform, host, grace, clusterExtra), noEnv, deployer.New())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ns: ns, js: js, cfg: cfg, rec: record(t, js), metrics: prometheus.NewRegistry()}
	return &dockerHost{t: t, reg: reg, host: host, api: api, e: e, port: freePort(t)}
}

// newSwarmHost is a dockerHost whose engine is a Swarm manager, with a
// cluster of type swarm: skipped (or failed under CI) unless the engine is
// one.
func newSwarmHost(t testing.TB) *dockerHost {
	t.Helper()
	testkit.SwarmManager(t)
	return newDockerHost(t, "swarm", "")
}

var stopTimeout = 1

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// image pushes a busybox image serving page on the host's port with a
// health check, and returns its reference pinned by digest. broken makes
// one whose server exits at once.
func (h *dockerHost) image(repo, tag, page string, broken bool) (ref, digest string) {
	h.t.Helper()
	return h.imageIn(h.reg, repo, tag, page, broken)
}

// imageIn is image, pushed to another registry.
func (h *dockerHost) imageIn(reg *testkit.Registry, repo, tag, page string, broken bool) (ref, digest string) {
	h.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", h.port)
	cmd := []string{"httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", h.port), "-h", "/www"}
	if broken {
		cmd = []string{"sh", "-c", "echo 'config missing' >&2; exit 3"}
	}
	img := testkit.BusyboxImage(h.t, testkit.BusyboxOptions{
		Cmd:   cmd,
		Files: map[string]string{"/www/index.html": page},
		Healthcheck: &v1.HealthConfig{
			Test:     []string{"CMD", "wget", "-q", "-O-", url},
			Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, Retries: 3,
		},
	})
	tagged := reg.Host + "/" + repo + ":" + tag
	digest = testkit.PushImage(h.t, tagged, img)
	return tagged + "@" + digest, digest
}

// run creates and starts a labelled container of ref, with configuration a
// recreate must keep, and waits until it is healthy.
func (h *dockerHost) run(name, ref string, labels map[string]string) string {
	h.t.Helper()
	id := h.start(name, ref, labels)
	h.healthy(name, ref)
	return id
}

// start creates and starts the container.
func (h *dockerHost) start(name, ref string, labels map[string]string) string {
	h.t.Helper()
	ctx := h.t.Context()
	pull, err := h.api.ImagePull(ctx, ref, imagePullOptions())
	if err != nil {
		h.t.Fatal(err)
	}
	drain(pull)
	created, err := h.api.ContainerCreate(ctx, &dcontainer.Config{
		Image: ref, Labels: labels, Env: []string{"GREETING=hello", "LEVEL=3"},
		// busybox as PID 1 ignores SIGTERM: without this every stop
		// waits the engine's default 10 s before SIGKILL.
		StopTimeout: &stopTimeout,
	}, &dcontainer.HostConfig{
		NetworkMode:   "host",
		RestartPolicy: dcontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2},
		Binds:         []string{h.t.TempDir() + ":/data:ro"},
	}, nil, nil, name)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { h.removeAll(name) })
	if err := h.api.ContainerStart(ctx, created.ID, dcontainer.StartOptions{}); err != nil {
		h.t.Fatal(err)
	}
	return created.ID
}

// removeAll removes the container and any the deployer made for it.
func (h *dockerHost) removeAll(name string) {
	ctx := context.Background()
	list, err := h.api.ContainerList(ctx, dcontainer.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, c := range list {
		for _, n := range c.Names {
			if n == "/"+name || strings.HasPrefix(n, "/"+name+".") {
				_ = h.api.ContainerRemove(ctx, c.ID, dcontainer.RemoveOptions{Force: true})
			}
		}
	}
}

// healthy waits until the container called name runs ref, healthy.
func (h *dockerHost) healthy(name, ref string) {
	h.t.Helper()
	testkit.WaitFor(h.t, name+" healthy on "+ref, func() bool {
		c, err := h.api.ContainerInspect(h.t.Context(), name)
		return err == nil && c.Config.Image == ref && c.State.Running && c.State.Health != nil && c.State.Health.Status == "healthy"
	})
}

func (h *dockerHost) inspect(name string) dcontainer.InspectResponse {
	h.t.Helper()
	c, err := h.api.ContainerInspect(h.t.Context(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// containersNamed lists every container whose name is name or begins with
// "name.": what the deployer left of a recreate.
func (h *dockerHost) containersNamed(name string) []string {
	h.t.Helper()
	list, err := h.api.ContainerList(h.t.Context(), dcontainer.ListOptions{All: true})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, c := range list {
		for _, n := range c.Names {
			if n == "/"+name || strings.HasPrefix(n, "/"+name+".") {
				out = append(out, strings.TrimPrefix(n, "/"))
			}
		}
	}
	return out
}

// pushed publishes an image.pushed event for an image of the host's registry.
func (h *dockerHost) pushed(repo, tag, digest string) {
	h.t.Helper()
	data := events.ImagePushed{Environment: "dev", Registry: h.reg.Host, Repository: repo, Tag: tag, Digest: digest,
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 700, Source: "dev-registry", Format: "distribution",
		UpstreamID: "u-" + tag + digest, PushedAt: time.Now()}
	ev, err := events.New(h.t.Context(), events.Spec{
		ID: events.ID("image.pushed", "dev", h.reg.Host, repo, tag, digest), Type: events.TypeImagePushed,
		Source: "/slipway/ingest/dev-registry", Environment: "dev", Subject: data.Ref().String(), Data: data,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(h.e.js, "").Publish(h.t.Context(), ev); err != nil {
		h.t.Fatal(err)
	}
}

// userConfig is what a person set on a container, which a recreate keeps.
// The labels a recreate adds to say which container it replaced
// (slipway.replaces*) are the deployer's bookkeeping, left out.
func userConfig(c dcontainer.InspectResponse) string {
	labels := map[string]string{}
	for k, v := range c.Config.Labels {
		if !strings.HasPrefix(k, "slipway.replaces") {
			labels[k] = v
		}
	}
	return fmt.Sprintf("env=%v labels=%v cmd=%v health=%+v stop=%v network=%s restart=%+v binds=%v",
		c.Config.Env, labels, c.Config.Cmd, *c.Config.Healthcheck, *c.Config.StopTimeout,
		c.HostConfig.NetworkMode, c.HostConfig.RestartPolicy, c.HostConfig.Binds)
}

// A push reaches a labelled container on a real Docker engine: it is
// recreated on the new digest with the old one's configuration, becomes
// healthy, the old container is removed, and deployment.succeeded is
// announced once, naming the platform and the new container.
func TestDockerContainerIsRecreatedOnPush(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	v2ref, v2dig := h.image("apps/web", "1.1.0", "v2", false)
	oldID := h.run("web-recreate", v1ref, map[string]string{"slipway.policy": "all"})
	// Another container of the same repository, without the label: a
	// sleeper, since the port is the managed one's.
	idle := testkit.BusyboxImage(t, testkit.BusyboxOptions{Cmd: []string{"sleep", "3600"}})
	idleRef := h.reg.Host + "/apps/web:1.0.0-idle@" + testkit.PushImage(t, h.reg.Host+"/apps/web:1.0.0-idle", idle)
	unmanagedID := h.start("web-unmanaged", idleRef, nil)
	before := h.inspect("web-recreate")
	h.e.start(deployer.New())

	h.pushed("apps/web", "1.1.0", v2dig)
	ok := h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	h.e.drained()

	after := h.inspect("web-recreate")
	if after.Config.Image != v2ref || after.ID == oldID || !after.State.Running || after.State.Health.Status != "healthy" {
		t.Errorf("web-recreate: image %s, id %s (old %s), running %v, health %s; want %s, a new container, healthy",
			after.Config.Image, after.ID, oldID, after.State.Running, after.State.Health.Status, v2ref)
	}
	if got, want := userConfig(after), userConfig(before); got != want {
		t.Errorf("configuration changed:\n got %s\nwant %s", got, want)
	}
	if _, err := h.api.ContainerInspect(t.Context(), oldID); !dclient.IsErrNotFound(err) {
		t.Errorf("the old container is still there (%v)", err)
	}
	if got := h.containersNamed("web-recreate"); len(got) != 1 {
		t.Errorf("containers left: %v, want only web-recreate", got)
	}
	d := deploymentOf(t, ok[0])
	if d.Platform != "docker" || d.AppID != "web-recreate" || d.DeploymentID != after.ID || d.Revision != after.ID ||
		d.FromImage != v1ref || d.ToImage != v2ref || d.MarathonDeploymentID != "" {
		t.Errorf("succeeded data: %+v", d)
	}
	if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)); n != 1 {
		t.Errorf("%d deployment.succeeded, want 1", n)
	}
	if u := h.inspect("web-unmanaged"); u.ID != unmanagedID || u.Config.Image != idleRef || !u.State.Running || u.RestartCount != 0 {
		t.Errorf("the unlabelled container was touched: id %s (was %s), image %s, running %v", u.ID, unmanagedID, u.Config.Image, u.State.Running)
	}
	for _, ev := range h.e.rec.All() {
		if strings.Contains(string(ev.Data()), "web-unmanaged") {
			t.Errorf("the unlabelled container appears in %s", ev.Type())
		}
	}
}

// An image that exits at once is rolled back: deployment.failed with
// rolledBack, and the old container (the same one) runs again under its
// name with its configuration unchanged.
func TestDockerBrokenImageIsRolledBack(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	_, badDig := h.image("apps/web", "1.1.0", "", true)
	oldID := h.run("web-rollback", v1ref, map[string]string{"slipway.policy": "all"})
	before := h.inspect("web-rollback")
	h.e.start(deployer.New())

	h.pushed("apps/web", "1.1.0", badDig)
	failed := deploymentOf(t, h.e.rec.Wait(t, events.TypeDeploymentFailed, 1)[0])
	h.e.drained()

	if !failed.RolledBack || failed.Platform != "docker" || failed.Reason == "" {
		t.Errorf("failed data: %+v, want rolledBack on docker with a reason", failed)
	}
	h.healthy("web-rollback", v1ref)
	after := h.inspect("web-rollback")
	if after.ID != oldID {
		t.Errorf("web-rollback is container %s, want the old one %s back", after.ID, oldID)
	}
	if got, want := userConfig(after), userConfig(before); got != want {
		t.Errorf("configuration changed:\n got %s\nwant %s", got, want)
	}
	if got := h.containersNamed("web-rollback"); len(got) != 1 {
		t.Errorf("containers left: %v, want only web-rollback", got)
	}
	if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)); n != 0 {
		t.Errorf("%d deployment.succeeded, want none", n)
	}
}

// A deployer killed after each phase of a recreate is recorded resumes on
// restart: exactly one outcome, and the app runs at the end.
func TestDockerCrashedDeployerResumes(t *testing.T) {
	for _, phase := range []string{"updating", "following"} {
		t.Run(phase, func(t *testing.T) {
			h := newDockerHost(t, "docker", "")
			v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
			v2ref, v2dig := h.image("apps/web", "1.1.0", "v2", false)
			name := "web-crash-" + phase
			h.run(name, v1ref, map[string]string{"slipway.policy": "all"})

			ctx, crash := context.WithCancel(context.Background())
			wait := h.e.startCtx(ctx, &deployer.Service{Hooks: &deployer.Hooks{
				BeforePhase: func(_, _, p string) {
					if p == phase {
						crash()
					}
				},
				AfterPut: func(string, string) {
					if phase == "updating" {
						crash() // the recreate done, not recorded
					}
				},
			}})
			h.pushed("apps/web", "1.1.0", v2dig)
			wait()

			h.e.start(deployer.New())
			h.e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
			h.e.drained()
			h.healthy(name, v2ref)
			if n := len(h.e.rec.Of(events.TypeDeploymentSucceeded)) + len(h.e.rec.Of(events.TypeDeploymentFailed)); n != 1 {
				t.Errorf("%d outcomes, want exactly 1", n)
			}
			if got := h.containersNamed(name); len(got) != 1 {
				t.Errorf("containers left: %v, want only %s", got, name)
			}
		})
	}
}

// A container recreated by hand on another image is drift, reported once.
func TestDockerChangeByHandIsDrift(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	v9ref, _ := h.image("apps/web", "0.9.0", "v0.9", false)
	h.run("web-drift", v1ref, map[string]string{"slipway.policy": "all"})
	h.e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool {
		return inventoryHas(t, h.e, "host1", "web-drift", v1ref)
	})

	// By hand: docker rm -f web-drift && docker run --name web-drift … 0.9.0
	h.removeAll("web-drift")
	h.run("web-drift", v9ref, map[string]string{"slipway.policy": "all"})

	// A pass between the rm and the run reports the removal first.
	d := waitDrift(t, h.e, "drift to 0.9.0", func(d events.DriftDetected) bool { return !d.Unmanaged })
	if d.AppID != "web-drift" || d.ExpectedImage != v1ref || d.ActualImage != v9ref || d.Platform != "docker" {
		t.Errorf("drift data: %+v", d)
	}
}

func imagePullOptions() dimage.PullOptions { return dimage.PullOptions{} }

func drain(rc interface {
	Read([]byte) (int, error)
	Close() error
}) {
	defer rc.Close()
	buf := make([]byte, 32<<10)
	for {
		if _, err := rc.Read(buf); err != nil {
			return
		}
	}
}

// inventoryHas tells whether the inventory records image for the workload.
func inventoryHas(t *testing.T, e *env, cluster, id, image string) bool {
	inv, err := inventory.Bind(t.Context(), e.js)
	if err != nil {
		return false
	}
	r, ok, err := inv.Get(t.Context(), cluster, id)
	return err == nil && ok && r.Image == image
}

// Two deployer replicas on one Docker host, pushes of several images of
// one repository: never two updates of one container at once (each
// deployment.started is followed by its outcome before the next starts),
// and the container ends on the last image.
func TestDockerTwoReplicasNeverUpdateOneContainerAtOnce(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	v1ref, _ := h.image("apps/web", "1.0.0", "v1", false)
	h.run("web-replicas", v1ref, map[string]string{"slipway.policy": "all"})
	h.e.start(deployer.New())
	h.e.start(deployer.New())

	var last string
	tags := []string{"1.1.0", "1.2.0", "1.3.0"}
	for _, tag := range tags {
		ref, dig := h.image("apps/web", tag, "v"+tag, false)
		h.pushed("apps/web", tag, dig)
		last = ref
	}
	testkit.WaitFor(t, "web-replicas on the last image", func() bool {
		c, err := h.api.ContainerInspect(t.Context(), "web-replicas")
		return err == nil && c.Config.Image == last && c.State.Health != nil && c.State.Health.Status == "healthy"
	})
	h.e.drained()

	open := ""
	for _, ev := range h.e.rec.All() {
		d := deploymentOf(t, ev)
		switch events.Type(ev.Type()) {
		case events.TypeDeploymentStarted:
			if open != "" {
				t.Errorf("deployment to %s started while the one to %s was under way", d.ToImage, open)
			}
			open = d.ToImage
		case events.TypeDeploymentSucceeded, events.TypeDeploymentFailed:
			if open != d.ToImage {
				t.Errorf("outcome of %s, but the deployment under way was to %q", d.ToImage, open)
			}
			open = ""
		}
	}
	if got := h.containersNamed("web-replicas"); len(got) != 1 {
		t.Errorf("containers left: %v", got)
	}
}
