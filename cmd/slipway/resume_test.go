package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
)

// TestLateResumeKeepsAHealthyRelease: a deployer dies while Marathon rolls
// out 1.0.1 and is back only after the deployment's timeout, when 1.0.1
// has long been running healthy. What the platform runs now decides: the
// release is announced deployed and stays; nothing is put back. (It used to
// PUT 1.0.0 back with force=true and announce "not healthy after".)
func TestLateResumeKeepsAHealthyRelease(t *testing.T) {
	const timeout = time.Second
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	mara := startMarathon(t)

	// The registry notifies ingest through a relay, so that ingest can be
	// configured with the registry's real host, known once it runs.
	var ingestURL atomic.Pointer[url.URL]
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := ingestURL.Load()
		if u == nil {
			http.Error(w, "ingest is not up yet", http.StatusServiceUnavailable)
			return
		}
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(relay.Close)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: relay.URL + "/webhooks/dev-registry"})

	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q, insecure: true } } ]
ingest:
  listen: "127.0.0.1:0"
  sources: [ { name: dev-registry, format: distribution, environment: dev, auth: { none: true } } ]
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q }, deploy: { timeout: %s } }
deployer: { pollInterval: 100ms }
ops: { listen: "off" }
`, ns.URL, reg.Host, mara.url, timeout)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	got := watch(t, js, "slipway.deployment.>")
	u, err := url.Parse(startIngest(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	ingestURL.Store(u)
	mara.load(t, fmt.Sprintf(`{"id":"/int/web","instances":2,"labels":{"slipway.policy":"all"},
		"container":{"type":"DOCKER","docker":{"image":"%s/apps/web:1.0.0"}},
		"healthChecks":[{"protocol":"MESOS_HTTP","path":"/healthz","portIndex":0}],
		"portDefinitions":[{"port":0,"protocol":"tcp"}]}`, reg.Host))

	// The first deployer dies once Marathon deploys 1.0.1 and the
	// deployment is recorded and announced.
	crashed := runCrashing(t, cfg, func(crash func()) *deployer.Hooks {
		return &deployer.Hooks{BeforePhase: func(_, _, phase string) {
			if phase == "following" {
				crash()
			}
		}}
	})
	testkit.WaitFor(t, "the deployer's consumer", func() bool {
		_, err := js.Consumer(t.Context(), bus.DefaultStream, deployer.ConsumerName("azure-int"))
		return err == nil
	})
	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.0.1")
	want := reg.Host + "/apps/web:1.0.1@" + testkit.Digest(t, reg.Host+"/apps/web:1.0.1")
	started := got.wait(t, events.TypeDeploymentStarted, 1)[0]
	crashed.wait(t)

	testkit.WaitFor(t, "1.0.1 running healthy, its deployment over", func() bool {
		a := mara.app(t, "/int/web")
		return a.image() == want && len(a.Deployments) == 0 && a.TasksHealthy == a.Instances && a.TasksUnhealthy == 0
	})
	testkit.WaitFor(t, "the deployment's timeout to pass", func() bool { return time.Since(started.Time()) > timeout })

	runService(t, cfg, deployer.New())
	testkit.WaitFor(t, "the resumed deployment's end", func() bool {
		return len(got.of(events.TypeDeploymentSucceeded))+len(got.of(events.TypeDeploymentFailed)) > 0
	})
	for _, e := range got.of(events.TypeDeploymentFailed) {
		d, _ := events.DataAs[events.Deployment](e)
		t.Errorf("deployment.failed for a release that runs healthy: %q, rolled back: %v", d.Reason, d.RolledBack)
	}
	for _, e := range got.of(events.TypeDeploymentSucceeded) {
		if d, _ := events.DataAs[events.Deployment](e); d.ToImage != want {
			t.Errorf("succeeded: %+v", d)
		}
	}
	if img := mara.image(t, "/int/web"); img != want {
		t.Errorf("/int/web runs %s, want %s kept", img, want)
	}
	var puts []string
	for _, r := range mara.emu.Requests() {
		if r.Method == http.MethodPut {
			puts = append(puts, r.Path+"?"+r.Query)
		}
	}
	if len(puts) != 1 {
		t.Errorf("PUTs %v, want only the one of 1.0.1", puts)
	}
}

// crashing is a deployer process that its hook kills.
type crashing struct {
	done chan struct{} // closed when the process has ended
}

// runCrashing runs a deployer as its own process, with the hooks hooks
// makes: a hook that calls crash ends the process there, before it does
// anything more (every later step fails on the cancelled context, as after
// a kill).
func runCrashing(t *testing.T, cfg *config.Config, hooks func(crash func()) *deployer.Hooks) *crashing {
	t.Helper()
	ctx, crash := context.WithCancel(context.Background())
	c := &crashing{done: make(chan struct{})}
	svc := &deployer.Service{Hooks: hooks(crash)}
	var out io.Writer = io.Discard
	if os.Getenv("SLIPWAY_SYSTEM_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, nil)).With("test", t.Name(), "instance", "crashing")
	go func() {
		defer close(c.done)
		_ = app.Run(ctx, cfg, log, svc) // a crash's error is the crash's
	}()
	t.Cleanup(func() { crash(); c.wait(t) })
	return c
}

func (c *crashing) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the crashed deployer did not stop")
	}
}
