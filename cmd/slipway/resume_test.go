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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/notifier"
)

// TestLateResumeKeepsAHealthyRelease: a deployer dies while Marathon rolls
// out 1.0.1 and is back only after the deployment's timeout, when 1.0.1
// has long been running healthy. What the platform runs now decides: the
// release is announced deployed and stays; nothing is put back. (It used to
// PUT 1.0.0 back with force=true and announce "not healthy after".)
func TestLateResumeKeepsAHealthyRelease(t *testing.T) {
	const timeout = time.Second
	s := newDevStack(t, timeout, "")
	want, started := s.crashWhileDeploying("1.0.1")

	testkit.WaitFor(t, "1.0.1 running healthy, its deployment over", func() bool {
		a := s.mara.app(t, "/int/web")
		return a.image() == want && len(a.Deployments) == 0 && a.TasksHealthy == a.Instances && a.TasksUnhealthy == 0
	})
	testkit.WaitFor(t, "the deployment's timeout to pass", func() bool { return time.Since(started.Time()) > timeout })

	runService(t, s.cfg, deployer.New())
	testkit.WaitFor(t, "the resumed deployment's end", func() bool {
		return len(s.got.Of(events.TypeDeploymentSucceeded))+len(s.got.Of(events.TypeDeploymentFailed)) > 0
	})
	for _, e := range s.got.Of(events.TypeDeploymentFailed) {
		d, _ := events.DataAs[events.Deployment](e)
		t.Errorf("deployment.failed for a release that runs healthy: %q, rolled back: %v", d.Reason, d.RolledBack)
	}
	for _, e := range s.got.Of(events.TypeDeploymentSucceeded) {
		if d, _ := events.DataAs[events.Deployment](e); d.ToImage != want {
			t.Errorf("succeeded: %+v", d)
		}
	}
	if img := s.mara.image(t, "/int/web"); img != want {
		t.Errorf("/int/web runs %s, want %s kept", img, want)
	}
	if puts := s.puts(); len(puts) != 1 {
		t.Errorf("PUTs %v, want only the one of 1.0.1", puts)
	}
}

// TestSupersededDeploymentIsNoPage: a deployer dies while Marathon deploys
// 1.0.1; meanwhile 1.0.2 is pushed and deployed (by another replica). The
// resumed 1.0.1 ends deployment.failed with superseded and the newer image;
// the team's channel reads a calm "superseded by" line, and the on-call
// route, for failures with superseded: false, stays quiet.
func TestSupersededDeploymentIsNoPage(t *testing.T) {
	slack := testkit.NewSlack(t, "xoxb-slipway", "#deploys", "#oncall")
	s := newDevStack(t, time.Minute, fmt.Sprintf(`
notify:
  receivers:
    - { name: team-slack, slack: { token: xoxb-slipway, channel: "#deploys", apiUrl: %[1]q } }
    - { name: oncall-slack, slack: { token: xoxb-slipway, channel: "#oncall", apiUrl: %[1]q } }
  routes:
    - { match: { types: ["*.failed"], superseded: false }, receivers: [oncall-slack], continue: true }
    - { match: { types: ["deployment.failed"] }, receivers: [team-slack] }
`, slack.APIURL))
	s.crashWhileDeploying("1.0.1")
	testkit.PushRandomImage(t, s.reg.Host+"/apps/web:1.0.2")
	newer := s.reg.Host + "/apps/web:1.0.2@" + testkit.Digest(t, s.reg.Host+"/apps/web:1.0.2")
	s.deploy(newer)

	runService(t, s.cfg, deployer.New(), notifier.New())
	d, _ := events.DataAs[events.Deployment](s.got.Wait(t, events.TypeDeploymentFailed, 1)[0])
	if !d.Superseded || d.SupersededBy != newer || d.RolledBack {
		t.Errorf("failed data: %+v", d)
	}
	if img := s.mara.image(t, "/int/web"); img != newer {
		t.Errorf("/int/web runs %s, want %s kept", img, newer)
	}
	const line = "apps/web 1.0.1 on azure-int: /int/web superseded by apps/web 1.0.2"
	testkit.WaitFor(t, "the team's message", func() bool {
		for _, m := range slack.Messages("#deploys") {
			if strings.Contains(m.Text, line) {
				return true
			}
		}
		return false
	})
	// The message and its thread's parent: no failure, no red cross.
	for _, m := range slack.Messages("#deploys") {
		if strings.Contains(m.Text, "failed") || strings.Contains(fmt.Sprint(m.Blocks), ":x:") {
			t.Errorf("the team reads %q, blocks %v: want a calm superseded line", m.Text, m.Blocks)
		}
	}
	testkit.WaitFor(t, "the on-call receiver to settle the event", func() bool {
		c, err := s.js.Consumer(t.Context(), bus.DefaultStream, notifier.ConsumerName("oncall-slack"))
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.Delivered.Stream >= s.lastSeq(t) && info.NumAckPending == 0 && info.NumPending == 0
	})
	if msgs := slack.Messages("#oncall"); len(msgs) != 0 {
		t.Errorf("on-call paged for a superseded deployment: %q", msgs[0].Text)
	}
}

// devStack is a dev registry that notifies ingest, one emulated Marathon
// cluster running /int/web at 1.0.0 (two instances, health checks) with
// apps/web of that registry, and the configuration of every service.
type devStack struct {
	t    *testing.T
	js   jetstream.JetStream
	reg  *testkit.Registry
	mara *marathonServer
	cfg  *config.Config
	got  *testkit.Recorder // deployment events
}

// newDevStack starts it, with the cluster's deploy timeout and extra YAML
// for the configuration (a notify section, say).
func newDevStack(t *testing.T, timeout time.Duration, extra string) *devStack {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	s := &devStack{t: t, js: js, mara: startMarathon(t)}

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
	s.reg = testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: relay.URL + "/webhooks/dev-registry"})

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
%s`, ns.URL, s.reg.Host, s.mara.url, timeout, extra)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = cfg
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	s.got = testkit.Record(t, js, "slipway.deployment.>")
	u, err := url.Parse(startIngest(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	ingestURL.Store(u)
	s.mara.load(t, fmt.Sprintf(`{"id":"/int/web","instances":2,"labels":{"slipway.policy":"all"},
		"container":{"type":"DOCKER","docker":{"image":"%s/apps/web:1.0.0"}},
		"healthChecks":[{"protocol":"MESOS_HTTP","path":"/healthz","portIndex":0}],
		"portDefinitions":[{"port":0,"protocol":"tcp"}]}`, s.reg.Host))
	return s
}

// crashWhileDeploying pushes tag and runs a deployer that dies once
// Marathon deploys it and the deployment is recorded and announced; it
// returns the image deployed and its deployment.started.
func (s *devStack) crashWhileDeploying(tag string) (string, events.Event) {
	t := s.t
	t.Helper()
	crashed := runCrashing(t, s.cfg, func(crash func()) *deployer.Hooks {
		return &deployer.Hooks{BeforePhase: func(_, _, phase string) {
			if phase == "following" {
				crash()
			}
		}}
	})
	testkit.WaitFor(t, "the deployer's consumer", func() bool {
		_, err := s.js.Consumer(t.Context(), bus.DefaultStream, deployer.ConsumerName("azure-int"))
		return err == nil
	})
	ref := s.reg.Host + "/apps/web:" + tag
	testkit.PushRandomImage(t, ref)
	image := ref + "@" + testkit.Digest(t, ref)
	started := s.got.Wait(t, events.TypeDeploymentStarted, 1)[0]
	crashed.wait(t)
	return image, started
}

// deploy puts image on /int/web the way another deployer replica would,
// overriding any deployment in progress.
func (s *devStack) deploy(image string) {
	s.t.Helper()
	s.mara.putImage(s.t, "/int/web", image)
}

// puts lists the PUTs the cluster received.
func (s *devStack) puts() []string {
	var puts []string
	for _, r := range s.mara.emu.Requests() {
		if r.Method == http.MethodPut {
			puts = append(puts, r.Path+"?"+r.Query)
		}
	}
	return puts
}

// lastSeq is the stream's last sequence now.
func (s *devStack) lastSeq(t *testing.T) uint64 {
	st, err := s.js.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
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
