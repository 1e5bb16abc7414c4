package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	devents "github.com/docker/docker/api/types/events"
	dfilters "github.com/docker/docker/api/types/filters"
	dimage "github.com/docker/docker/api/types/image"
	dclient "github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-cd/slipway/pkg/testkit"
	dockertarget "github.com/slipway-cd/slipway/services/deployer/docker"
)

// The system's Docker host: besides the Marathon apps, the prd stage of a
// few repositories runs as labelled containers on a real Docker engine
// (cluster sysDockerCluster, type docker). Their images are busybox
// sleepers the engine can pull and run, one config per push so that every
// push has its own digest. The engine is shared with other tests, so
// everything here carries this run's label and is removed at the end.

// sysDockerCluster is the deployer's cluster entry for the Docker host.
const sysDockerCluster = "prd-docker"

// sysDockerEnv is the stage whose registry the containers pull from.
const sysDockerEnv = "prd"

// sysRunLabel marks the containers and images of one run.
const sysRunLabel = "chaos.run"

type sysDocker struct {
	t    *testing.T
	api  *dclient.Client
	host string
	run  string
	base v1.Image // busybox running sleep 3600, labelled with the run
	// repos are the repositories that have a container.
	repos map[string]bool

	mu sync.Mutex
	// creates are the containers the engine created for a recreate (at
	// <name>.slipway-next), as sysPut{workload, image}: Docker's updates.
	creates []sysPut
	// initial counts the containers the harness created itself.
	initial   int
	streamErr error
}

// startSysDocker creates one container per repository on the engine,
// running prd's image of it at 0.1.0, and follows the engine's create
// events before any deployer starts.
func startSysDocker(t *testing.T, s *system, repos []string) *sysDocker {
	t.Helper()
	host := testkit.DockerHost(t)
	api, err := dclient.NewClientWithOpts(dclient.WithHost(host), dclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	d := &sysDocker{t: t, api: api, host: host, run: strings.ToLower(rand.Text()[:10]), repos: map[string]bool{}}
	// Registered before anything is created, and before the services
	// start, so it runs after they have all stopped.
	t.Cleanup(func() {
		d.removeAll()
		api.Close()
	})
	d.base = testkit.BusyboxImage(t, testkit.BusyboxOptions{
		Cmd:    []string{"sleep", "3600"},
		Labels: map[string]string{sysRunLabel: d.run},
	})
	d.follow()

	// The starting image must be prd's (the deployer matches containers
	// by their registry) without a push to prd, which would be an event
	// no push explains: it comes from a registry of its own and is tagged
	// as prd's in the engine.
	side := testkit.NewRegistry(t, testkit.RegistryOptions{})
	start := side.Host + "/chaos/busybox:" + d.run
	testkit.PushImage(t, start, d.base)
	ctx := t.Context()
	pull, err := api.ImagePull(ctx, start, dimage.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, pull)
	pull.Close()
	stop := 1 // busybox as PID 1 ignores SIGTERM: stop at once, not after 10s
	for _, repo := range repos {
		d.repos[repo] = true
		ref := s.reg[sysDockerEnv].Host + "/" + repo + ":0.1.0"
		if err := api.ImageTag(ctx, start, ref); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("chaos-%s-%s", d.run, repo[strings.LastIndex(repo, "/")+1:])
		c, err := api.ContainerCreate(ctx, &dcontainer.Config{
			Image:       ref,
			Labels:      map[string]string{"slipway.policy": "all", sysRunLabel: d.run},
			StopTimeout: &stop,
		}, &dcontainer.HostConfig{NetworkMode: "none"}, nil, nil, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.ContainerStart(ctx, c.ID, dcontainer.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		s.apps = append(s.apps, sysApp{cluster: sysDockerCluster, env: sysDockerEnv, id: name, repo: repo, docker: d})
	}
	// Seeing its own creates proves the event stream is there before a
	// deployer can recreate anything.
	testkit.WaitFor(t, "the engine's create events", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.initial == len(repos) || d.streamErr != nil
	})
	return d
}

// follow records the engine's container create events of this run until
// the test ends. A recreate names its new container <name>.slipway-next,
// so a create there is one update of <name> to the event's image.
func (d *sysDocker) follow() {
	ctx, cancel := context.WithCancel(context.Background())
	d.t.Cleanup(cancel)
	msgs, errs := d.api.Events(ctx, devents.ListOptions{Filters: dfilters.NewArgs(
		dfilters.Arg("type", string(devents.ContainerEventType)),
		dfilters.Arg("event", string(devents.ActionCreate)),
		dfilters.Arg("label", sysRunLabel+"="+d.run),
	)})
	go func() {
		for {
			select {
			case m := <-msgs:
				d.mu.Lock()
				if w, ok := strings.CutSuffix(m.Actor.Attributes["name"], dockertarget.SuffixNext); ok {
					d.creates = append(d.creates, sysPut{app: w, image: m.Actor.Attributes["image"], at: time.Unix(0, m.TimeNano)})
				} else {
					d.initial++
				}
				d.mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil {
					d.mu.Lock()
					d.streamErr = err
					d.mu.Unlock()
				}
				return
			}
		}
	}()
}

// image is the image pushed as repo:tag: the sleeper with a config of its
// own, so that no two pushes share a digest.
func (d *sysDocker) image(repo, tag string) v1.Image {
	d.t.Helper()
	cf, err := d.base.ConfigFile()
	if err != nil {
		d.t.Fatal(err)
	}
	c := cf.Config
	c.Labels = maps.Clone(c.Labels)
	c.Labels["chaos.image"] = repo + ":" + tag
	img, err := mutate.Config(d.base, c)
	if err != nil {
		d.t.Fatal(err)
	}
	return img
}

// updates are the recreates the engine saw, in order, and whether the
// event stream broke (then they are not all of them).
func (d *sysDocker) updates() ([]sysPut, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.creates), d.streamErr
}

// state is the image of the container called name, and what is wrong
// with it besides its image: not running, or containers of an operation
// left beside it.
func (d *sysDocker) state(name string) (image string, trouble []string) {
	ctx := d.t.Context()
	c, err := d.api.ContainerInspect(ctx, name)
	if err != nil {
		return "", []string{err.Error()}
	}
	if !c.State.Running {
		trouble = append(trouble, fmt.Sprintf("%s is %s", name, c.State.Status))
	}
	list, err := d.api.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: dfilters.NewArgs(dfilters.Arg("label", sysRunLabel+"="+d.run))})
	if err != nil {
		return c.Config.Image, append(trouble, err.Error())
	}
	for _, x := range list {
		for _, n := range x.Names {
			if strings.HasPrefix(n, "/"+name+".") {
				trouble = append(trouble, "left behind: "+strings.TrimPrefix(n, "/"))
			}
		}
	}
	return c.Config.Image, trouble
}

// removeAll removes this run's containers and images from the engine.
func (d *sysDocker) removeAll() {
	ctx := context.Background()
	run := dfilters.NewArgs(dfilters.Arg("label", sysRunLabel+"="+d.run))
	if list, err := d.api.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: run}); err == nil {
		for _, c := range list {
			if err := d.api.ContainerRemove(ctx, c.ID, dcontainer.RemoveOptions{Force: true}); err != nil {
				d.t.Logf("remove container %s: %v", c.ID, err)
			}
		}
	}
	if list, err := d.api.ImageList(ctx, dimage.ListOptions{All: true, Filters: run}); err == nil {
		for _, img := range list {
			if _, err := d.api.ImageRemove(ctx, img.ID, dimage.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				d.t.Logf("remove image %s: %v", img.ID, err)
			}
		}
	}
}
