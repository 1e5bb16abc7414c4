package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	webconsole "github.com/slipway-cd/slipway/services/console"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/promoter"
)

// The console's users at the OpenID provider, one per kind of person the
// roles below tell apart.
var (
	// consoleDeveloper may see and operate dev only.
	consoleDeveloper = testkit.OIDCUser{Username: "dana", Password: "dana-pw-1", Email: "dana@example.com", Name: "Dana Developer", Groups: []string{"developers"}}
	// consoleReleaseManager approves and operates in dev, tst and prd.
	consoleReleaseManager = testkit.OIDCUser{Username: "rita", Password: "rita-pw-1", Email: "rita@example.com", Name: "Rita Release", Groups: []string{"release-managers"}}
	// consoleOperator sees and operates every environment but approves
	// nothing.
	consoleOperator = testkit.OIDCUser{Username: "otto", Password: "otto-pw-1", Email: "otto@example.com", Name: "Otto Operator", Groups: []string{"operators"}}
)

// consoleEnvs are the stages of the console's system, in promotion order.
var consoleEnvs = []string{"dev", "tst", "prd"}

// consoleSysApps are the Marathon apps of every stage's cluster (one
// cluster per stage, "<env>-marathon"), all opted in, running version
// 1.0.0 of their repository (apps/<name>) before the test pushes
// anything. Each has the same id on every cluster, so that the matrix
// shows it as one row with a cell per stage.
var consoleSysApps = []string{"web", "rollback"}

// Tokens of the system's parts (test values, never shown by the console).
const (
	consoleSysHook       = "Bearer console-system"
	consoleSysSlackToken = "xoxb-console-system"
	consoleSysApprover   = "release-bot"
	consoleSysApproverTk = "release-bot-t0ken"
)

// consoleSys is the whole of Slipway as `slipway run` assembles it (ingest,
// promoter, deployer, notifier and the console in one process) on an
// embedded JetStream, with a Distribution registry and a Marathon emulator
// per stage, a Slack stand-in, and the console logging people in at an
// OpenID provider running in process.
type consoleSys struct {
	URL       string // the console, http://127.0.0.1:port (no trailing slash)
	IngestURL string
	OP        *testkit.OIDCProvider
	Regs      map[string]*testkit.Registry // by environment
	Marathons map[string]*marathonServer   // by environment
	Slack     *testkit.Slack
	JS        jetstream.JetStream
	Events    *testkit.Recorder // every event on the stream from the start
	Cfg       *config.Config

	// flaky fails every event of the repository apps/flaky until fixed:
	// the source of real dead letters.
	flaky *flakyConsumer
}

// consoleSysConfig is the system's configuration: three stages, a
// promotion that needs a release manager's approval into prd, roles for
// the three users, and the console behind the OpenID provider.
func consoleSysConfig(t *testing.T, s *consoleSys, natsURL, ingestAddr, consoleAddr, clientID, clientSecret string) *config.Config {
	t.Helper()
	doc := fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
ingest:
  listen: %q
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { header: { name: Authorization, value: %q } } }
    - { name: tst-registry, format: distribution, environment: tst, auth: { header: { name: Authorization, value: %q } } }
    - { name: prd-registry, format: distribution, environment: prd, auth: { header: { name: Authorization, value: %q } } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"], tags: { semver: ">=1.0.0" } }
  - name: tst-to-prd
    from: tst
    to: prd
    repositories: ["apps/**"]
    tags: { semver: ">=1.0.0" }
    approval: { required: true, groups: [release-managers], timeout: 1h }
approvers:
  - { name: %s, token: %s, groups: [release-managers] }
roles:
  - { group: developers, environments: [dev], can: [view, operate] }
  - { group: release-managers, environments: [dev, tst, prd], can: [approve, operate] }
  - { group: operators, environments: ["*"], can: [view, operate] }
clusters:
  - { name: dev-marathon, environment: dev, marathon: { url: %q } }
  - { name: tst-marathon, environment: tst, marathon: { url: %q } }
  - { name: prd-marathon, environment: prd, marathon: { url: %q } }
deployer: { pollInterval: 100ms }
notify:
  receivers:
    - name: slack
      slack: { token: %s, channel: "#releases", apiUrl: %q }
      rateLimit: 50
  routes:
    - match: { types: ["approval.*", "image.promoted", "deployment.failed"] }
      receivers: [slack]
ops: { listen: "off" }
console:
  listen: %q
  auth:
    oidc:
      issuer: %q
      clientId: %q
      clientSecret: %q
      redirectUrl: %q
`, natsURL, s.Regs["dev"].Host, s.Regs["tst"].Host, s.Regs["prd"].Host, ingestAddr,
		consoleSysHook, consoleSysHook, consoleSysHook,
		consoleSysApprover, consoleSysApproverTk,
		s.Marathons["dev"].url, s.Marathons["tst"].url, s.Marathons["prd"].url,
		consoleSysSlackToken, s.Slack.APIURL,
		consoleAddr, s.OP.Issuer, clientID, clientSecret, "http://"+consoleAddr+config.CallbackPath)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("the console system's configuration: %v", err)
	}
	return cfg
}

// startConsoleSys starts the system and returns once the console is ready
// and every consumer that acts on a push exists.
func startConsoleSys(t *testing.T) *consoleSys {
	t.Helper()
	ns := testkit.NATS(t)
	s := &consoleSys{
		OP:        testkit.NewOIDCProvider(t, consoleDeveloper, consoleReleaseManager, consoleOperator),
		Regs:      map[string]*testkit.Registry{},
		Marathons: map[string]*marathonServer{},
		Slack:     testkit.NewSlack(t, consoleSysSlackToken, "#releases"),
	}
	ingestAddr, consoleAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	clientID, clientSecret := s.OP.RegisterClient(t, "http://"+consoleAddr+config.CallbackPath)
	for _, env := range consoleEnvs {
		s.Regs[env] = testkit.NewRegistry(t, testkit.RegistryOptions{
			NotifyURL:     "http://" + ingestAddr + "/webhooks/" + env + "-registry",
			NotifyHeaders: map[string][]string{"Authorization": {consoleSysHook}},
		})
		m := startMarathon(t)
		var apps []string
		for _, name := range consoleSysApps {
			apps = append(apps, fmt.Sprintf(`{"id":"/%s","instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/apps/%s:1.0.0"}}}`,
				name, s.Regs[env].Host, name))
		}
		m.load(t, apps...)
		s.Marathons[env] = m
	}
	s.Cfg = consoleSysConfig(t, s, ns.URL, ingestAddr, consoleAddr, clientID, clientSecret)

	var err error
	s.JS, s.Events = recordStream(t, ns, s.Cfg, events.SubjectPrefix+".>")
	s.flaky = startFlakyConsumer(t, s.JS)

	in, web := ingest.New(), webconsole.New()
	ingestUp, consoleUp := make(chan net.Addr, 1), make(chan net.Addr, 1)
	in.Listening = func(a net.Addr) { ingestUp <- a }
	web.Listening = func(a net.Addr) { consoleUp <- a }
	done := runService(t, s.Cfg, in, promoter.New(), deployer.New(), notifier.New(), web)
	for _, up := range []struct {
		name string
		ch   chan net.Addr
		url  *string
	}{{"ingest", ingestUp, &s.IngestURL}, {"the console", consoleUp, &s.URL}} {
		select {
		case a := <-up.ch:
			*up.url = "http://" + a.String()
		case err = <-done:
			t.Fatalf("the services ended before %s listened: %v", up.name, err)
		case <-time.After(time.Minute):
			t.Fatalf("%s did not listen within a minute", up.name)
		}
	}
	testkit.WaitReady(t, s.URL+"/readyz", nil)
	// A dead letter can be redriven only once the stream has forgotten
	// its event's id (the duplicate window, 10 minutes at the least in a
	// configuration): the services have made the stream, so a test may
	// shorten the window to a second.
	shortenDuplicateWindow(t, s.JS, time.Second)
	testkit.WaitReady(t, s.IngestURL+"/readyz", nil)
	consumers := []string{promoter.ConsumerName, notifier.ConsumerName("slack")}
	for _, env := range consoleEnvs {
		consumers = append(consumers, deployer.ConsumerName(env+"-marathon"))
	}
	for _, c := range consumers {
		testkit.WaitFor(t, "consumer "+c, func() bool {
			_, err := s.JS.Consumer(t.Context(), bus.DefaultStream, c)
			return err == nil
		})
	}
	return s
}

// push pushes a new image to env's registry and returns its reference
// with the digest (registry/repository:tag@digest).
func (s *consoleSys) push(t *testing.T, env, repo, tag string) string {
	t.Helper()
	ref := s.Regs[env].Host + "/" + repo + ":" + tag
	testkit.PushRandomImage(t, ref)
	return ref + "@" + testkit.Digest(t, ref)
}

// waitEvent waits (a minute at most) for an event of typ from index from
// of the recorder on that matches, and returns it with its index.
func (s *consoleSys) waitEvent(t *testing.T, what string, typ events.Type, match func(events.Event) bool) events.Event {
	t.Helper()
	var got events.Event
	testkit.WaitFor(t, what, func() bool {
		for _, e := range s.Events.Of(typ) {
			if match == nil || match(e) {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// approvalFor waits for the approval requested for repo's tag into prd
// and returns its id.
func (s *consoleSys) approvalFor(t *testing.T, repo, tag string) string {
	t.Helper()
	e := s.waitEvent(t, "the approval of "+repo+":"+tag+" into prd", events.TypeApprovalRequested, func(e events.Event) bool {
		d, err := events.DataAs[events.ApprovalRequested](e)
		return err == nil && d.To.Repository == repo && d.To.Tag == tag
	})
	d, _ := events.DataAs[events.ApprovalRequested](e)
	return d.ApprovalID
}

// decisions are the approval decisions recorded so far, by approval id.
func (s *consoleSys) decisions() map[string]events.Event {
	out := map[string]events.Event{}
	for _, typ := range []events.Type{events.TypeApprovalGranted, events.TypeApprovalRejected} {
		for _, e := range s.Events.Of(typ) {
			if d, err := events.DataAs[events.ApprovalDecision](e); err == nil {
				out[d.ApprovalID] = e
			}
		}
	}
	return out
}

// actionsOf are the action.requested events of an action recorded so far.
func (s *consoleSys) actionsOf(action string) []events.ActionRequested {
	var out []events.ActionRequested
	for _, e := range s.Events.Of(events.TypeActionRequested) {
		if d, err := events.DataAs[events.ActionRequested](e); err == nil && d.Action == action {
			out = append(out, d)
		}
	}
	return out
}

// flakyConsumer is a consumer of the image pushes in dev that gives up
// on those of apps/flaky until fixed: each becomes a dead letter, as a
// consumer of someone's own would leave one.
type flakyConsumer struct {
	mu      sync.Mutex
	fixed   bool
	handled map[string]int // event id → deliveries handled
}

// flakyConsumerName is the durable name the dead letters name.
const flakyConsumerName = "release-notes"

func startFlakyConsumer(t *testing.T, js jetstream.JetStream) *flakyConsumer {
	t.Helper()
	f := &flakyConsumer{handled: map[string]int{}}
	c, err := bus.Consume(t.Context(), js, bus.ConsumerConfig{
		Durable: flakyConsumerName, Logger: slog.New(slog.DiscardHandler),
		FilterSubjects: []string{events.FilterSubject(events.TypeImagePushed, "dev")},
	}, func(_ context.Context, e events.Event) error {
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil || !strings.HasPrefix(d.Repository, "apps/flaky") {
			return nil
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.fixed {
			return bus.Permanent(errors.New("release notes: the changelog service refused the entry (422)"))
		}
		f.handled[e.ID()]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return f
}

// fix lets the consumer handle what it gave up on.
func (f *flakyConsumer) fix() {
	f.mu.Lock()
	f.fixed = true
	f.mu.Unlock()
}

// handledOnce reports whether the consumer handled event id after a fix.
func (f *flakyConsumer) handledOnce(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handled[id] > 0
}

// waitRedrivable waits until the dead letter of event id can be redriven:
// it is listed and the event stream's duplicate window since the original
// is over.
func (s *consoleSys) waitRedrivable(t *testing.T, id string) {
	t.Helper()
	testkit.WaitFor(t, "the dead letter of "+id+" redrivable", func() bool {
		list, err := bus.ListDeadLetters(t.Context(), s.JS, bus.DeadLetterStreamName(bus.DefaultStream))
		for _, d := range list {
			if err == nil && d.EventID == id {
				return time.Now().After(bus.RedriveNotBefore(t.Context(), s.JS, bus.DefaultStream, d))
			}
		}
		return false
	})
}

// shortenDuplicateWindow sets the duplicate window of the event stream and
// its dead letters.
func shortenDuplicateWindow(t *testing.T, js jetstream.JetStream, window time.Duration) {
	t.Helper()
	for _, name := range []string{bus.DefaultStream, bus.DeadLetterStreamName(bus.DefaultStream)} {
		st, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.Duplicates = window
		if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
	}
}
