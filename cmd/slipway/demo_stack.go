package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/cmd/slipway/internal/devstack"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	webconsole "github.com/slipway-cd/slipway/services/console"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/promoter"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// The demo's fixed names.
const (
	demoApprover      = "release-manager"
	demoApproverToken = "demo-release-manager-token"
	demoRepo          = "apps/web"
	// demoSlackToken is the bot token of the demo's Slack stand-in.
	demoSlackToken = "xoxb-slipway-demo"
	// demoReleaseChannel gets approvals, promotions and failures (the
	// notify route); demoTeamChannel every deployment of the sample apps
	// (their slipway.notify label).
	demoReleaseChannel = "#releases"
	demoTeamChannel    = "#web-team"
	// demoReconcile is deployer.reconcileInterval: how soon a change made
	// by hand shows as drift.
	demoReconcile = 2 * time.Second
)

// demoEnvs are the stages, in promotion order.
var demoEnvs = []string{"dev", "tst", "prd"}

// demoApp is one sample app on an emulated cluster.
type demoApp struct {
	// Cluster is the configuration's cluster entry, Marathon the emulated
	// Marathon it points at.
	Cluster, Marathon, Env, ID string
}

// demoApps are the sample apps, one per stage, on two emulated Marathons:
// the integration cluster (azure-int) runs dev and tst — two cluster
// entries of the configuration, one per environment, on one Marathon —
// and production runs on vsphere-prd.
var demoApps = []demoApp{
	{Cluster: "azure-int", Marathon: "azure-int", Env: "dev", ID: "/dev/web"},
	{Cluster: "azure-int-tst", Marathon: "azure-int", Env: "tst", ID: "/tst/web"},
	{Cluster: "vsphere-prd", Marathon: "vsphere-prd", Env: "prd", ID: "/prd/web"},
}

// demoBrokenImages matches the images whose tasks never become healthy.
var demoBrokenImages = regexp.MustCompile(`broken`)

// demoStack is everything the demo runs, and how to stop it.
type demoStack struct {
	natsURL    string
	ingestURL  string
	consoleURL string
	registries map[string]*devstack.Registry // by environment
	marathons  map[string]*devstack.Marathon // by cluster name
	slack      *devstack.Slack
	nc         *nats.Conn
	js         jetstream.JetStream

	closers []func() // run in reverse order by close
}

func (s *demoStack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// startDemoStack starts NATS, the registries, the emulators, the Slack
// stand-in (each message a person would read goes to notified) and the
// services. On error, what was started is stopped.
func startDemoStack(ctx context.Context, opts demoOptions, notified func(channel, text string)) (_ *demoStack, err error) {
	s := &demoStack{registries: map[string]*devstack.Registry{}, marathons: map[string]*devstack.Marathon{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	storeDir, err := os.MkdirTemp("", "slipway-demo-nats-")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = os.RemoveAll(storeDir) })
	natsAddr, err := freeAddr("")
	if err != nil {
		return nil, err
	}
	s.natsURL = "nats://" + natsAddr
	ingestAddr := opts.IngestListen
	if ingestAddr == "" {
		if ingestAddr, err = freeAddr("127.0.0.1:8080"); err != nil {
			return nil, err
		}
	}

	consoleAddr := opts.ConsoleListen
	if consoleAddr == "" {
		if consoleAddr, err = freeAddr("127.0.0.1:8090"); err != nil {
			return nil, err
		}
	}

	// Registries: addresses now, serving once ingest listens.
	for _, env := range demoEnvs {
		r, err := devstack.Listen()
		if err != nil {
			return nil, err
		}
		s.registries[env] = r
		s.closers = append(s.closers, func() { _ = r.Close() })
	}

	label := func(policy, timeout string) string {
		l := fmt.Sprintf(`"slipway.policy":%q,"slipway.notify":%q`, policy, "slack:"+demoTeamChannel)
		if timeout != "" {
			l += fmt.Sprintf(`,"slipway.timeout":%q`, timeout)
		}
		return "{" + l + "}"
	}
	appDef := func(id, env, labels string) string {
		return fmt.Sprintf(`{"id":%q,"instances":2,"cpus":0.1,"mem":64,"labels":%s,"container":{"type":"DOCKER","docker":{"image":"%s/%s:1.3.0"}}}`,
			id, labels, s.registries[env].Host, demoRepo)
	}
	emuOpts := emulator.Options{DeployDuration: opts.DeployDuration, UnhealthyImages: demoBrokenImages}
	defs := map[string][]string{} // Marathon → its apps
	var order []string
	for _, a := range demoApps {
		policy, timeout := "all", ""
		switch a.Env {
		case "dev":
			timeout = opts.BrokenTimeout.String()
		case "prd":
			policy = "minor"
		}
		if defs[a.Marathon] == nil {
			order = append(order, a.Marathon)
		}
		defs[a.Marathon] = append(defs[a.Marathon], appDef(a.ID, a.Env, label(policy, timeout)))
	}
	started := map[string]*devstack.Marathon{}
	for _, name := range order {
		m, err := devstack.StartMarathon(emuOpts, []byte("["+strings.Join(defs[name], ",")+"]"))
		if err != nil {
			return nil, err
		}
		started[name] = m
		s.closers = append(s.closers, m.Close)
	}
	for _, a := range demoApps {
		s.marathons[a.Cluster] = started[a.Marathon]
	}
	if s.slack, err = devstack.StartSlack(demoSlackToken, notified, demoReleaseChannel, demoTeamChannel); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.slack.Close)

	doc := fmt.Sprintf(`
nats:
  embedded: { listen: %q, storeDir: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
ingest:
  listen: %q
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { none: true } }
    - { name: tst-registry, format: distribution, environment: tst, auth: { none: true } }
    - { name: prd-registry, format: distribution, environment: prd, auth: { none: true } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"], tags: { semver: ">=1.0.0" } }
  - name: tst-to-prd
    from: tst
    to: prd
    repositories: ["apps/**"]
    tags: { semver: ">=1.0.0" }
    approval: { required: true, timeout: 1h }   # any approver: the demo's, or anyone in the console
approvers:
  - { name: %s, token: %s }
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q, auth: { none: true } } }
  - { name: azure-int-tst, environment: tst, marathon: { url: %q, auth: { none: true } } }
  - { name: vsphere-prd, environment: prd, marathon: { url: %q, auth: { none: true } } }
deployer: { pollInterval: 200ms, reconcileInterval: %s }
notify:
  receivers:
    - name: slack
      slack: { token: %s, channel: %q, apiUrl: %q }
      rateLimit: 50   # the stand-in has no rate limit (Slack's is about 1 a second)
  routes:
    - match: { types: ["approval.*", "image.promoted", "promotion.failed", "deployment.failed", "drift.detected"] }
      receivers: [slack]
ops: { listen: "off" }
console:
  listen: %q
  auth: { none: true }   # the demo's console lets anyone in with every permission: never so in earnest
`, natsAddr, storeDir, s.registries["dev"].Host, s.registries["tst"].Host, s.registries["prd"].Host, ingestAddr,
		demoApprover, demoApproverToken, s.marathons["azure-int"].URL, s.marathons["azure-int-tst"].URL, s.marathons["vsphere-prd"].URL,
		demoReconcile, demoSlackToken, demoReleaseChannel, s.slack.APIURL, consoleAddr)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}

	// The services, in one app.Run as `slipway run` does.
	logOut := opts.Log
	if logOut == nil {
		logOut = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: opts.LogLevel}))
	in := ingest.New()
	listening := make(chan net.Addr, 1)
	in.Listening = func(a net.Addr) { listening <- a }
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	web := webconsole.New()
	consoleListening := make(chan net.Addr, 1)
	web.Listening = func(a net.Addr) { consoleListening <- a }
	go func() { done <- app.Run(runCtx, cfg, log, in, promoter.New(), deployer.New(), notifier.New(), web) }()
	s.closers = append(s.closers, func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case a := <-listening:
		s.ingestURL = "http://" + a.String()
	case err := <-done:
		return nil, fmt.Errorf("services: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case a := <-consoleListening:
		s.consoleURL = "http://" + a.String() + "/"
	case err := <-done:
		return nil, fmt.Errorf("services: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	for _, env := range demoEnvs {
		if err := s.registries[env].Start(s.ingestURL + "/webhooks/" + env + "-registry"); err != nil {
			return nil, err
		}
	}

	if s.nc, err = nats.Connect(s.natsURL, nats.Name("slipway demo")); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.nc.Close)
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}

	// Pushes must not come before the consumers that act on them exist.
	consumers := []string{promoter.ConsumerName, notifier.ConsumerName("slack")}
	for _, a := range demoApps {
		consumers = append(consumers, deployer.ConsumerName(a.Cluster))
	}
	wctx, wcancel := context.WithTimeout(ctx, opts.StepTimeout)
	defer wcancel()
	for _, c := range consumers {
		for {
			if _, err := s.js.Consumer(wctx, bus.DefaultStream, c); err == nil {
				break
			}
			select {
			case err := <-done:
				return nil, fmt.Errorf("services: %w", errors.Join(err, errors.New("stopped")))
			case <-wctx.Done():
				return nil, fmt.Errorf("consumer %s did not appear: %w", c, wctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return s, nil
}
