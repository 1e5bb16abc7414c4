package testkit_test

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// containerWait bounds how long a container may take to become healthy or
// exit: the engine's vfs driver copies the layer for every container.
const containerWait = time.Minute

func TestBusyboxImageCarriesConfigBusyboxAndFiles(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	hc := &v1.HealthConfig{
		Test:        []string{"CMD", "true"},
		Interval:    time.Second,
		Timeout:     2 * time.Second,
		StartPeriod: 3 * time.Second,
		Retries:     4,
	}
	img := testkit.BusyboxImage(t, testkit.BusyboxOptions{
		Entrypoint:  []string{"sh", "-c"},
		Cmd:         []string{"sleep 1"},
		Env:         []string{"GREETING=hi"},
		Healthcheck: hc,
		Labels:      map[string]string{"app": "web"},
		Files:       map[string]string{"/www/index.html": "hello"},
	})
	ref := reg.Host + "/busybox/config:1"
	digest := testkit.PushImage(t, ref, img)
	if got := testkit.Digest(t, ref); got != digest {
		t.Fatalf("PushImage returned %s, the registry has %s", digest, got)
	}

	pulled, err := remote.Image(mustRef(t, ref), testkit.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"sh", "-c"}) || !slices.Equal(c.Cmd, []string{"sleep 1"}) {
		t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
	}
	if !slices.Equal(c.Env, []string{"PATH=/bin", "GREETING=hi"}) {
		t.Errorf("Env = %q", c.Env)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, hc.Test) || c.Healthcheck.Interval != hc.Interval ||
		c.Healthcheck.Timeout != hc.Timeout || c.Healthcheck.StartPeriod != hc.StartPeriod || c.Healthcheck.Retries != hc.Retries {
		t.Errorf("Healthcheck = %+v, want %+v", c.Healthcheck, hc)
	}
	if c.Labels["app"] != "web" {
		t.Errorf("Labels = %v", c.Labels)
	}

	layers, err := pulled.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	entries := layerEntries(t, layers[0])
	if e := entries["bin/busybox"]; e.Typeflag != tar.TypeReg || e.Mode&0o111 == 0 || e.Size == 0 {
		t.Errorf("bin/busybox = %+v, want an executable file", e)
	}
	for _, a := range []string{"sh", "httpd", "sleep", "wget"} {
		if e := entries["bin/"+a]; e.Typeflag != tar.TypeSymlink || e.Linkname != "busybox" {
			t.Errorf("bin/%s = %+v, want a link to busybox", a, e)
		}
	}
	if e := entries["www/index.html"]; e.Typeflag != tar.TypeReg || e.Size != int64(len("hello")) {
		t.Errorf("www/index.html = %+v", e)
	}
	if e := entries["www/"]; e.Typeflag != tar.TypeDir {
		t.Errorf("www/ = %+v, want its directory", e)
	}
}

func layerEntries(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
}

func mustRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestContainerFromBusyboxImageServesHTTPAndBecomesHealthy(t *testing.T) {
	docker := testkit.Docker(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	addr := testkit.FreeAddr(t)
	img := testkit.BusyboxImage(t, testkit.BusyboxOptions{
		Cmd: []string{"httpd", "-f", "-p", addr, "-h", "/www"},
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", "wget", "-q", "-O-", "http://" + addr + "/"},
			Interval:    200 * time.Millisecond,
			Timeout:     5 * time.Second,
			StartPeriod: 30 * time.Second,
			Retries:     3,
		},
		Files: map[string]string{"/www/index.html": "busybox says hello"},
	})
	ref := reg.Host + "/busybox/httpd"
	digest := testkit.PushImage(t, ref+":1", img)

	id := runContainer(t, docker, ref+"@"+digest, img)

	ctx, cancel := context.WithTimeout(t.Context(), containerWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st := inspectState(t, docker, id)
		if st.Health.Status == "healthy" {
			break
		}
		if !st.Running || st.Health.Status == "unhealthy" {
			t.Fatalf("container stopped or turned unhealthy: %+v", st)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container not healthy within %s: %+v", containerWait, st)
		case <-tick.C:
		}
	}

	// The container runs in the host's network: its server answers here too.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "busybox says hello" {
		t.Fatalf("GET / = %s %q", resp.Status, body)
	}
}

func TestContainerWhoseCommandExitsNeverBecomesHealthy(t *testing.T) {
	docker := testkit.Docker(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := testkit.BusyboxImage(t, testkit.BusyboxOptions{
		Cmd: []string{"sh", "-c", "exit 1"},
		// A check that would pass at once if it ever ran.
		Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: 200 * time.Millisecond, Retries: 1},
	})
	ref := reg.Host + "/busybox/exit"
	digest := testkit.PushImage(t, ref+":1", img)

	id := runContainer(t, docker, ref+"@"+digest, img)

	// The engine answers /wait when the container has stopped.
	ctx, cancel := context.WithTimeout(t.Context(), containerWait)
	defer cancel()
	var exit struct{ StatusCode int }
	if err := docker.Do(ctx, http.MethodPost, "/containers/"+id+"/wait", nil, &exit); err != nil {
		t.Fatal(err)
	}
	if exit.StatusCode != 1 {
		t.Errorf("exit status = %d, want 1", exit.StatusCode)
	}
	st := inspectState(t, docker, id)
	if st.Running || st.ExitCode != 1 {
		t.Errorf("state = %+v, want stopped with exit code 1", st)
	}
	if st.Health.Status == "healthy" {
		t.Errorf("health = %q, want never healthy", st.Health.Status)
	}
}

type containerState struct {
	Status   string
	Running  bool
	ExitCode int
	Error    string
	// Health is zero for a container without a healthcheck.
	Health struct {
		Status        string
		FailingStreak int
	}
}

func inspectState(t *testing.T, docker *testkit.DockerAPI, id string) containerState {
	t.Helper()
	var c struct{ State containerState }
	if err := docker.Do(t.Context(), http.MethodGet, "/containers/"+id+"/json", nil, &c); err != nil {
		t.Fatal(err)
	}
	return c.State
}

// runContainer pulls ref into the engine, creates a container of it in the
// host's network and starts it; the container and the image are removed
// in t.Cleanup.
func runContainer(t *testing.T, docker *testkit.DockerAPI, ref string, img v1.Image) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), containerWait)
	defer cancel()
	if err := docker.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	imageID, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockerCleanup(t, docker, "/images/"+imageID.String()+"?force=1") })

	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	var created struct{ Id string }
	body := map[string]any{
		"Image":      ref,
		"HostConfig": map[string]any{"NetworkMode": "host"},
		"Labels":     map[string]string{"dev.slipway.test": t.Name()},
	}
	if err := docker.Do(ctx, http.MethodPost, "/containers/create?name=testkit-"+hex.EncodeToString(suffix), body, &created); err != nil {
		t.Fatal(err)
	}
	// Registered after the image's cleanup, so it runs first.
	t.Cleanup(func() { dockerCleanup(t, docker, "/containers/"+created.Id+"?force=1&v=1") })
	if err := docker.Do(ctx, http.MethodPost, "/containers/"+created.Id+"/start", nil, nil); err != nil {
		t.Fatal(err)
	}
	return created.Id
}

func dockerCleanup(t *testing.T, docker *testkit.DockerAPI, deletePath string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := docker.Do(ctx, http.MethodDelete, deletePath, nil, nil); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// outcome records how a helper ended a test: the fake TB stops the
// goroutine as testing.T would.
type outcome struct {
	testing.TB
	fatal, skip string
}

func (o *outcome) Helper() {}
func (o *outcome) Fatalf(format string, args ...any) {
	o.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (o *outcome) Skipf(format string, args ...any) {
	o.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a fake TB and returns how it ended and f's result.
func run(t *testing.T, f func(testing.TB) string) (o *outcome, result string) {
	o = &outcome{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		result = f(o)
	}()
	<-done
	return o, result
}

func TestDockerHostWithoutEngineFailsUnderCIAndSkipsOtherwise(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nobody.sock"))

	t.Setenv("CI", "true")
	o, _ := run(t, testkit.DockerHost)
	if o.fatal == "" || o.skip != "" {
		t.Fatalf("under CI=true: fatal %q, skip %q; want a failure", o.fatal, o.skip)
	}
	if !strings.Contains(o.fatal, "nobody.sock") || !strings.Contains(o.fatal, "CI=true") {
		t.Errorf("failure message %q names neither the address nor CI", o.fatal)
	}

	t.Setenv("CI", "")
	o, _ = run(t, testkit.DockerHost)
	if o.skip == "" || o.fatal != "" {
		t.Fatalf("outside CI: fatal %q, skip %q; want a skip", o.fatal, o.skip)
	}
	if !strings.Contains(o.skip, "make docker-up") {
		t.Errorf("skip message %q does not say how to start an engine", o.skip)
	}
}

// fakeEngine answers /_ping and /info like an engine in the given swarm
// state, over TCP (the tcp:// form of DOCKER_HOST).
func fakeEngine(t *testing.T, state string, control bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_ping":
			_, _ = io.WriteString(w, "OK")
		case "/info":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"Swarm": map[string]any{"LocalNodeState": state, "ControlAvailable": control},
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}

func TestSwarmManagerAcceptsOnlyAnActiveManager(t *testing.T) {
	t.Setenv("CI", "true")
	for _, tc := range []struct {
		state   string
		control bool
		ok      bool
	}{
		{"active", true, true},
		{"active", false, false}, // a worker
		{"inactive", false, false},
		{"pending", false, false},
	} {
		host := fakeEngine(t, tc.state, tc.control)
		t.Setenv("DOCKER_HOST", host)
		o, got := run(t, testkit.SwarmManager)
		switch {
		case tc.ok && (o.fatal != "" || got != host):
			t.Errorf("%s/%t: got %q, failure %q; want %s", tc.state, tc.control, got, o.fatal, host)
		case !tc.ok && !strings.Contains(o.fatal, "not a Swarm manager"):
			t.Errorf("%s/%t: failure %q, want one saying it is not a Swarm manager", tc.state, tc.control, o.fatal)
		}
	}
}

func TestDockerAPIReportsTheEnginesMessage(t *testing.T) {
	docker := testkit.Docker(t)
	err := docker.Do(t.Context(), http.MethodGet, "/containers/testkit-no-such-container/json", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "testkit-no-such-container") {
		t.Fatalf("err = %v, want the engine's 404 naming the container", err)
	}
	if err := docker.Pull(t.Context(), "127.0.0.1:1/testkit/absent:1"); err == nil {
		t.Fatal("pull from a closed port succeeded")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pull error = %v, want the engine's", err)
	}
}
