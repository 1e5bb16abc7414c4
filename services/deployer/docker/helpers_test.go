package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// waitFor bounds a deployment in the tests: the engine's vfs driver copies
// the layer for every container it creates.
const waitFor = 2 * time.Minute

// testGrace is the grace of a container without a health check.
const testGrace = 700 * time.Millisecond

// fixture is a real engine, a registry it pulls from and one workload's
// container name.
type fixture struct {
	t    *testing.T
	host string
	reg  *testkit.Registry
	c    *client.Client
	name string
	port string // the port the workload's httpd listens on (network mode host)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	host := testkit.DockerHost(t)
	c, err := dockerapi.New(config.Docker{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	f := &fixture{
		t: t, host: host, c: c,
		reg:  testkit.NewRegistry(t, testkit.RegistryOptions{}),
		name: "slipway-test-" + hex.EncodeToString(b),
	}
	_, f.port, _ = strings.Cut(testkit.FreeAddr(t), ":")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range []string{f.name, f.name + SuffixNext, f.name + SuffixPrev, f.name + SuffixFailed} {
			_ = c.ContainerRemove(ctx, n, container.RemoveOptions{Force: true})
		}
	})
	return f
}

func (f *fixture) cluster() config.Cluster {
	return config.Cluster{Name: "docker-test", Type: config.ClusterDocker, Docker: config.Docker{Host: f.host, Grace: testGrace}}
}

// target opens a fresh Target, as a restarted deployer would.
func (f *fixture) target(opts ...dockerapi.Option) *Target {
	f.t.Helper()
	tg, err := open(f.cluster(), target.Options{}, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { tg.Close() })
	return tg
}

// url is where the workload's httpd answers.
func (f *fixture) url(path string) string { return "http://127.0.0.1:" + f.port + path }

// image pushes a busybox image that serves /www (index.html says version)
// and returns its reference with tag and digest.
func (f *fixture) image(tag string, o testkit.BusyboxOptions) string {
	f.t.Helper()
	if o.Files == nil {
		o.Files = map[string]string{"/www/index.html": tag}
	}
	if o.Cmd == nil && o.Entrypoint == nil {
		o.Cmd = []string{"sh"}
	}
	o.Env = append(o.Env, "IMAGE_VERSION="+tag)
	ref := f.reg.Host + "/apps/web:" + tag
	d := testkit.PushImage(f.t, ref, testkit.BusyboxImage(f.t, o))
	return ref + "@" + d
}

// httpd is the command that serves the workload's /www on its port.
func (f *fixture) httpd() []string {
	return []string{"httpd", "-f", "-p", "127.0.0.1:" + f.port, "-h", "/www"}
}

// healthcheck probes the workload's httpd at path.
func (f *fixture) healthcheck(path string) *container.HealthConfig {
	return &container.HealthConfig{
		Test:     []string{"CMD", "wget", "-q", "-O", "/dev/null", f.url(path)},
		Interval: 200 * time.Millisecond,
		Timeout:  2 * time.Second,
		Retries:  2,
	}
}

// run pulls ref and starts the workload's container with cfg and hc (cfg's
// Image is set to ref), then waits until it runs.
func (f *fixture) run(ref string, cfg *container.Config, hc *container.HostConfig) container.InspectResponse {
	f.t.Helper()
	ctx := f.t.Context()
	rc, err := f.c.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	cfg.Image = ref
	if hc.NetworkMode == "" {
		hc.NetworkMode = "host"
	}
	resp, err := f.c.ContainerCreate(ctx, cfg, hc, nil, nil, f.name)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		f.t.Fatal(err)
	}
	return f.inspect(f.name)
}

func (f *fixture) inspect(name string) container.InspectResponse {
	f.t.Helper()
	c, err := f.c.ContainerInspect(f.t.Context(), name)
	if err != nil {
		f.t.Fatalf("inspect %s: %v", name, err)
	}
	return c
}

func (f *fixture) exists(name string) bool {
	f.t.Helper()
	c, err := f.c.ContainerInspect(f.t.Context(), name)
	if cerrdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimPrefix(c.Name, "/") == name
}

// containers are the names of every container of the workload, temporary
// ones included.
func (f *fixture) containers() []string {
	f.t.Helper()
	cs, err := f.c.ContainerList(f.t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", f.name))})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, strings.TrimPrefix(c.Names[0], "/"))
	}
	slices.Sort(out)
	return out
}

// get reads the page the workload serves.
func (f *fixture) get(path string) (string, error) {
	resp, err := http.Get(f.url(path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", f.url(path), resp.Status)
	}
	return string(b), err
}

// deploy does what the deployer's core does to move the workload to img
// and follow it: read, adopt a rollout in progress for img or update, await.
func (f *fixture) deploy(tg *Target, img string) (target.Rollout, target.Outcome) {
	f.t.Helper()
	ctx := f.t.Context()
	w, err := tg.Get(ctx, f.name)
	if err != nil {
		f.t.Fatalf("Get: %v", err)
	}
	var r target.Rollout
	if w.Image == img && len(w.Rollouts) > 0 {
		r.ID = w.Rollouts[0]
	} else if r, err = tg.Update(ctx, w, img, target.UpdateOptions{}); err != nil {
		f.t.Fatalf("Update: %v", err)
	}
	return r, f.await(tg, r.ID)
}

func (f *fixture) await(tg *Target, id string) target.Outcome {
	f.t.Helper()
	o, timedOut, err := tg.Await(f.t.Context(), f.name, id, time.Now().Add(waitFor))
	if err != nil {
		f.t.Fatalf("Await: %v", err)
	}
	if timedOut {
		f.t.Fatalf("Await timed out: %s", o.Reason)
	}
	return o
}

// crashAt makes a Target whose operation stops right after step, as if
// the process died there.
func (f *fixture) crashAt(step string) *Target {
	tg := f.target()
	tg.afterStep = func(_, s string) error {
		if s == step {
			return errCrash
		}
		return nil
	}
	return tg
}

var errCrash = errors.New("simulated crash")

// userSet is what a user sets on a container, compared across a recreate.
type userSet struct {
	Env           []string
	Cmd           []string
	Entrypoint    []string
	Labels        map[string]string
	Healthcheck   *container.HealthConfig
	ExposedPorts  []string
	Binds         []string
	NetworkMode   string
	RestartPolicy container.RestartPolicy
	PortBindings  string
	Memory        int64
	LogConfig     container.LogConfig
	StopTimeout   *int
}

func userSetOf(c container.InspectResponse) userSet {
	u := userSet{
		Cmd: c.Config.Cmd, Entrypoint: c.Config.Entrypoint, Healthcheck: c.Config.Healthcheck,
		Binds: c.HostConfig.Binds, NetworkMode: string(c.HostConfig.NetworkMode),
		RestartPolicy: c.HostConfig.RestartPolicy, PortBindings: fmt.Sprint(c.HostConfig.PortBindings),
		Memory: c.HostConfig.Memory, LogConfig: c.HostConfig.LogConfig,
		Labels: maps.Clone(c.Config.Labels), StopTimeout: c.Config.StopTimeout,
	}
	delete(u.Labels, LabelReplaces)
	delete(u.Labels, LabelReplacesImage)
	for _, e := range c.Config.Env {
		// Both images set these; each container has its own image's.
		if !strings.HasPrefix(e, "IMAGE_VERSION=") && !strings.HasPrefix(e, "PATH=") {
			u.Env = append(u.Env, e)
		}
	}
	slices.Sort(u.Env)
	for p := range c.Config.ExposedPorts {
		u.ExposedPorts = append(u.ExposedPorts, string(p))
	}
	slices.Sort(u.ExposedPorts)
	return u
}

func sameUserSet(t *testing.T, before, after container.InspectResponse) {
	t.Helper()
	if b, a := userSetOf(before), userSetOf(after); !reflect.DeepEqual(b, a) {
		t.Errorf("the recreated container differs in what the user set:\nbefore %+v\nafter  %+v", b, a)
	}
}

// sameContainer checks that the host has the very container it had:
// same id, name, image and configuration.
func sameContainer(t *testing.T, before, after container.InspectResponse) {
	t.Helper()
	if after.ID != before.ID || after.Name != before.Name || after.Image != before.Image {
		t.Errorf("container is %s %s (%s), want %s %s (%s)", after.Name, short(after.ID), after.Image, before.Name, short(before.ID), before.Image)
	}
	if !reflect.DeepEqual(after.Config, before.Config) {
		t.Errorf("Config changed:\nbefore %+v\nafter  %+v", *before.Config, *after.Config)
	}
	if !reflect.DeepEqual(after.HostConfig, before.HostConfig) {
		t.Errorf("HostConfig changed:\nbefore %+v\nafter  %+v", *before.HostConfig, *after.HostConfig)
	}
}
