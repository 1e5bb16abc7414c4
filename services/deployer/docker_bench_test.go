package deployer_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
)

// The benchmarks below measure a push to a workload running on its new
// image, against the same change made by hand with the docker CLI in the
// same run: what the deployer adds (the event, the lease and state
// records, its reads of the host) to what the engine must do anyway (pull,
// create, stop, start, health checks). Each iteration deploys a new image;
// the images are built and pushed to the registry before the timer runs,
// and the engine pulls them inside it on both sides.

// benchImages pushes n distinct healthy images of repo (tags 1.1.0, 1.2.0…)
// and returns their references by digest with the digests.
func (h *dockerHost) benchImages(repo string, n int) (refs, digests []string) {
	h.t.Helper()
	for i := range n {
		ref, dig := h.image(repo, benchTag(i), "v"+benchTag(i), false)
		refs, digests = append(refs, ref), append(digests, dig)
	}
	return refs, digests
}

func benchTag(i int) string { return fmt.Sprintf("1.%d.0", i+1) }

// deployEach starts a deployer and times b.N deployments of new images of
// repo, each from its push to deployment.succeeded and then done(ref); it
// returns the last image.
func (h *dockerHost) deployEach(b *testing.B, repo string, done func(ref string)) (last string) {
	b.Helper()
	refs, digests := h.benchImages(repo, b.N)
	h.e.start(deployer.New())
	b.ResetTimer()
	for i := range b.N {
		h.pushed(repo, benchTag(i), digests[i])
		h.e.rec.Wait(b, events.TypeDeploymentSucceeded, i+1)
		done(refs[i])
	}
	b.StopTimer()
	if n := len(h.e.rec.Of(events.TypeDeploymentFailed)); n != 0 {
		b.Fatalf("%d deployments failed", n)
	}
	return refs[b.N-1]
}

// docker runs the docker CLI against the host's engine, as a person at a
// shell would, and returns its trimmed output.
func (h *dockerHost) docker(args ...string) string {
	h.t.Helper()
	cmd := exec.CommandContext(h.t.Context(), "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// BenchmarkDockerPushToHealthy: image.pushed → deployment.succeeded with
// the container healthy on the new image, against the same recreate typed
// with the docker CLI.
func BenchmarkDockerPushToHealthy(b *testing.B) {
	b.Run("slipway", func(b *testing.B) {
		h := newDockerHost(b, "docker", "")
		v0, _ := h.image("apps/web", "1.0.0", "v1.0.0", false)
		name := fmt.Sprintf("bench-web-%d", h.port)
		h.run(name, v0, map[string]string{"slipway.policy": "all"})
		h.deployEach(b, "apps/web", func(ref string) { h.healthy(name, ref) })
	})
	b.Run("docker-cli", func(b *testing.B) {
		h := newDockerHost(b, "docker", "")
		v0, _ := h.image("apps/web", "1.0.0", "v1.0.0", false)
		name := fmt.Sprintf("bench-cli-%d", h.port)
		h.run(name, v0, map[string]string{"slipway.policy": "all"})
		// The options the container was created with (harness start),
		// as the person would copy them from `docker inspect`.
		binds := h.inspect(name).HostConfig.Binds
		refs, _ := h.benchImages("apps/web", b.N)
		b.ResetTimer()
		for i := range b.N {
			h.docker("pull", "-q", refs[i])
			create := []string{"create", "--name", name + ".next", "--label", "slipway.policy=all",
				"-e", "GREETING=hello", "-e", "LEVEL=3", "--stop-timeout", "1",
				"--network", "host", "--restart", "on-failure:2"}
			for _, bind := range binds {
				create = append(create, "-v", bind)
			}
			h.docker(append(create, refs[i])...)
			h.docker("stop", name)
			h.docker("rename", name, name+".old")
			h.docker("rename", name+".next", name)
			h.docker("start", name)
			h.cliHealthy(name)
			h.docker("rm", name+".old")
		}
		b.StopTimer()
		h.healthy(name, refs[b.N-1])
	})
}

// cliHealthy polls `docker inspect` until the container is healthy, as a
// script would (each call is a process, so the loop needs no pause of its
// own to stay gentle; the ticker only bounds it).
func (h *dockerHost) cliHealthy(name string) {
	h.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(time.Minute)
	for {
		switch s := h.docker("inspect", "-f", "{{.State.Health.Status}}", name); s {
		case "healthy":
			return
		case "unhealthy":
			h.t.Fatalf("%s is unhealthy", name)
		}
		select {
		case <-tick.C:
		case <-timeout:
			h.t.Fatalf("%s not healthy within a minute", name)
		}
	}
}

// BenchmarkSwarmPushToConverged: image.pushed → deployment.succeeded with
// the service converged on the new image, against `docker service update
// --image`, which waits for the same convergence.
func BenchmarkSwarmPushToConverged(b *testing.B) {
	b.Run("slipway", func(b *testing.B) {
		h := newSwarmHost(b)
		v0, _ := h.image("apps/api", "1.0.0", "v1.0.0", false)
		name := h.benchService(v0)
		last := h.deployEach(b, "apps/api", func(string) {})
		h.benchConverged(name, last)
	})
	b.Run("docker-cli", func(b *testing.B) {
		h := newSwarmHost(b)
		v0, _ := h.image("apps/api", "1.0.0", "v1.0.0", false)
		name := h.benchService(v0)
		refs, _ := h.benchImages("apps/api", b.N)
		b.ResetTimer()
		for i := range b.N {
			h.docker("service", "update", "--quiet", "--image", refs[i], name)
		}
		b.StopTimer()
		h.benchConverged(name, refs[b.N-1])
	})
}

// benchService creates a labelled one-replica service of image on the host
// network and waits until it converged. Its update stops the old task
// first (the port is the host's) and watches the new one for 500 ms, the
// same for both sides of the benchmark; a stop waits at most 1 s, as the
// containers of the docker benchmark.
func (h *dockerHost) benchService(image string) string {
	h.t.Helper()
	return h.service("bench-api", image, swarmService{labels: managed, monitor: 500 * time.Millisecond})
}

// benchConverged waits until the service's spec is image and one task of
// that spec runs.
func (h *dockerHost) benchConverged(name, image string) {
	h.t.Helper()
	testkit.WaitFor(h.t, name+" running "+image, func() bool {
		s, _, err := h.api.ServiceInspectWithRaw(h.t.Context(), name, swarm.ServiceInspectOptions{})
		if err != nil || s.Spec.TaskTemplate.ContainerSpec.Image != image {
			return false
		}
		tasks, err := h.api.TaskList(h.t.Context(), swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", name))})
		if err != nil {
			return false
		}
		for _, tk := range tasks {
			if tk.Spec.ContainerSpec.Image == image && tk.Status.State == swarm.TaskStateRunning {
				return true
			}
		}
		return false
	})
}
