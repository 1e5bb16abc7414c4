package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/promoter"
)

// actionEvent returns the one action.requested recorded, with its data.
func actionEvent(t *testing.T, rec *testkit.Recorder) (events.Event, events.ActionRequested) {
	t.Helper()
	got := rec.Wait(t, events.TypeActionRequested, 1)
	if len(got) != 1 {
		t.Fatalf("%d action.requested, want 1", len(got))
	}
	d, err := events.DataAs[events.ActionRequested](got[0])
	if err != nil {
		t.Fatal(err)
	}
	return got[0], d
}

// TestDlqRedriveAnnouncesTheActionAsTheOSUser: each redrive is announced
// before it happens, naming the person at the terminal, the interface, the
// dead letter and the reason; the redrive itself still prints as before.
func TestDlqRedriveAnnouncesTheActionAsTheOSUser(t *testing.T) {
	t.Setenv("USER", "rita")
	e := startDlq(t, 100*time.Millisecond)
	ev := e.deadLetter(t)
	rec := testkit.Record(t, e.js, events.FilterSubject(events.TypeActionRequested, ""))
	e.fixed.Store(true)

	var out string
	testkit.WaitFor(t, "redrive after the window", func() bool {
		var err error
		out, err = execute(t, t.Context(), "dlq", "redrive", "1", "--reason", "marathon fixed", "--nats", e.ns.URL)
		if err != nil && !strings.Contains(out, "kept") {
			t.Fatalf("redrive: %v\n%s", err, out)
		}
		return err == nil
	})
	if !strings.Contains(out, "1: redriven: event "+ev.ID()+" to slipway.image.promoted.prd") {
		t.Errorf("redrive:\n%s", out)
	}
	// Every attempt, the kept ones too, is announced; the last one redrove.
	got := rec.Wait(t, events.TypeActionRequested, 1)
	last := got[len(got)-1]
	d, _ := events.DataAs[events.ActionRequested](last)
	want := events.ActionTarget{Environment: "prd", Sequence: 1, EventID: ev.ID()}
	if d.Action != events.ActionRedrive || d.Actor != "rita" || d.Via != events.ViaCLI || d.Reason != "marathon fixed" || d.Target != want {
		t.Errorf("action.requested %+v, want a redrive by rita via cli of %+v", d, want)
	}
	if events.EnvironmentOf(last) != "prd" {
		t.Errorf("announced in %q, want the dead letter's environment prd", events.EnvironmentOf(last))
	}
}

// actionConfig writes a configuration with two clusters and returns its
// path.
func actionConfig(t *testing.T, natsURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, path, fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: prd, registry: { host: "registry.prd.example" } }
clusters:
  - { name: prd-a, environment: prd, marathon: { url: "http://marathon.prd.example:8080" } }
  - { name: prd-b, environment: prd, marathon: { url: "http://marathon-b.prd.example:8080" } }
`, natsURL))
	return path
}

// TestRollbackAndRedeployAnnounceTheWorkload: the command checks the
// cluster against the configuration, announces the action for the
// deployer with the workload's environment, and prints its event id.
func TestRollbackAndRedeployAnnounceTheWorkload(t *testing.T) {
	t.Setenv("USER", "rita")
	for _, action := range []string{events.ActionRollback, events.ActionRedeploy} {
		t.Run(action, func(t *testing.T) {
			ns := testkit.NATS(t)
			_, js := ns.Connect(t)
			if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			rec := testkit.Record(t, js, events.FilterSubject(events.TypeActionRequested, ""))
			cfg := actionConfig(t, ns.URL)

			out, errOut, code := runCLI(t, t.Context(), action, "prd-b", "payments/api", "--config", cfg, "--reason", "bad release", "--wait=false")
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			ev, d := actionEvent(t, rec)
			want := events.ActionTarget{Environment: "prd", Cluster: "prd-b", AppID: "/payments/api"}
			if d.Action != action || d.Actor != "rita" || d.Via != events.ViaCLI || d.Reason != "bad release" || d.Target != want {
				t.Errorf("action.requested %+v, want %s by rita via cli of %+v", d, action, want)
			}
			if !strings.Contains(out, action+" of /payments/api on prd-b announced by rita: event "+ev.ID()) {
				t.Errorf("stdout %q does not name the action's event %s", out, ev.ID())
			}

			out, errOut, code = runCLI(t, t.Context(), action, "prd-c", "payments/api", "--config", cfg)
			if code != 2 || out != "" || !strings.Contains(errOut, `no cluster "prd-c" (configured: prd-a, prd-b)`) {
				t.Errorf("unknown cluster: exit %d, stdout %q, stderr %q; want 2 naming the configured clusters", code, out, errOut)
			}
			if n := len(rec.All()); n != 1 {
				t.Errorf("%d actions announced, want 1 (none for an unknown cluster)", n)
			}
		})
	}
}

// TestPromoteCommandPromotesNow: slipway promote announces the action,
// waits for the promoter's answer and exits with it: 0 once the image is in
// the next registry (its rule's soak time skipped), 1 when the promoter
// could not (a tag the registry does not have), 2 when the configuration
// cannot tell which rule is meant.
func TestPromoteCommandPromotesNow(t *testing.T) {
	t.Setenv("USER", "rita")
	ns := testkit.NATS(t)
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	doc := fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"], minAge: 24h }
  - { name: hotfix, from: dev, to: tst, repositories: ["apps/web"], tags: { regex: 'hotfix-.*' }, targetTag: "{{.Tag}}-hf" }
ops: { listen: "off" }
`, ns.URL, dev.Host, tst.Host)
	_, rec, path := runWithConfig(t, ns, doc, promoter.New(), promoter.ConsumerName)
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	dig := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")

	out, errOut, code := runCLI(t, t.Context(), "promote", dev.Host+"/apps/web:1.0.0", "--config", path, "--reason", "customer waiting")
	if code != 0 {
		t.Fatalf("promote: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ev, d := actionEvent(t, rec)
	if d.Target.Promotion != "dev-to-tst" || d.Target.Environment != "tst" || d.Actor != "rita" || d.Via != events.ViaCLI {
		t.Errorf("action.requested %+v", d)
	}
	if !strings.Contains(out, "event "+ev.ID()) || !strings.Contains(out, "image.promoted") {
		t.Errorf("stdout %q, want the action's event and the promotion", out)
	}
	if got := testkit.Digest(t, tst.Host+"/apps/web:1.0.0"); got != dig {
		t.Errorf("tst has %s, want %s", got, dig)
	}

	out, errOut, code = runCLI(t, t.Context(), "promote", dev.Host+"/apps/web:9.9.9", "--config", path)
	if code != 1 || !strings.Contains(out, "promotion.failed") || !strings.Contains(out, "was not found in its registry") || !strings.Contains(errOut, "failed (promotion.failed)") {
		t.Errorf("a missing tag: exit %d, stdout %q, stderr %q; want 1 with the promoter's reason", code, out, errOut)
	}

	_, errOut, code = runCLI(t, t.Context(), "promote", dev.Host+"/apps/web:hotfix-1", "--config", path)
	if code != 2 || !strings.Contains(errOut, "several rules promote apps/web:hotfix-1: dev-to-tst, hotfix; choose one with --rule") {
		t.Errorf("two rules: exit %d, stderr %q; want 2 listing both", code, errOut)
	}
}

// TestEventsLineSaysWhoAskedForAnAction: events tail and list show an
// action with who asked, through what, and why; a redrive names its dead
// letter.
func TestEventsLineSaysWhoAskedForAnAction(t *testing.T) {
	for _, tc := range []struct {
		req  actions.Request
		want string
	}{
		{actions.Request{ID: "a1", Action: events.ActionRollback, Actor: "rita", Via: events.ViaCLI, Reason: "bad release",
			Target: events.ActionTarget{Environment: "prd", Cluster: "prd-a", AppID: "/payments/api"}},
			"prd-a:/payments/api  rollback by rita via cli: bad release"},
		{actions.Request{ID: "a2", Action: events.ActionRedrive, Actor: "sam", Via: events.ViaConsole,
			Target: events.ActionTarget{Environment: "prd", Sequence: 3, EventID: "e1"}},
			"redrive by sam via console of dead letter 3 (event e1)"},
	} {
		e, err := actions.Event(t.Context(), tc.req, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if line := formatLine(e); !strings.Contains(line, "action.requested") || !strings.Contains(line, tc.want) {
			t.Errorf("%q lacks %q", line, tc.want)
		}
	}
}

// runWithConfig writes the configuration doc to a file the commands read,
// records the stream's events and runs svc with it until its durable
// consumer exists.
func runWithConfig(t *testing.T, ns *testkit.NATSServer, doc string, svc app.Service, consumer string) (jetstream.JetStream, *testkit.Recorder, string) {
	t.Helper()
	cfg := parseConfig(t, doc)
	path := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, path, doc)
	js, rec := recordStream(t, ns, cfg, "slipway.>")
	runService(t, cfg, svc)
	testkit.WaitFor(t, "the consumer "+consumer, func() bool {
		_, err := js.Consumer(t.Context(), bus.DefaultStream, consumer)
		return err == nil
	})
	return js, rec, path
}

// TestRollbackAndRedeployCommandsWaitForTheDeployment: against a deployer
// and a Marathon, slipway rollback puts the workload back on the image it
// ran before its last deployment and exits 0 once the deployment caused by
// the action succeeded; slipway redeploy deploys the image it runs again.
func TestRollbackAndRedeployCommandsWaitForTheDeployment(t *testing.T) {
	t.Setenv("USER", "rita")
	ns := testkit.NATS(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	m := startMarathon(t)
	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.0.0")
	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.1.0")
	old := reg.Host + "/apps/web:1.0.0"
	m.load(t, fmt.Sprintf(`{"id":"/apps/web","instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":%q}}}`, old))
	doc := fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q, insecure: true } } ]
clusters: [ { name: int-a, environment: dev, marathon: { url: %q } } ]
deployer: { pollInterval: 100ms }
ops: { listen: "off" }
`, ns.URL, reg.Host, m.url)
	js, rec, path := runWithConfig(t, ns, doc, deployer.New(), deployer.ActionConsumerName("int-a"))

	// A push deploys 1.1.0, as ingest would announce it.
	dig := testkit.Digest(t, reg.Host+"/apps/web:1.1.0")
	pushed := events.ImagePushed{Environment: "dev", Registry: reg.Host, Repository: "apps/web", Tag: "1.1.0", Digest: dig,
		Source: "dev-registry", Format: "distribution", PushedAt: time.Now()}
	ev, err := events.New(t.Context(), events.Spec{ID: events.ID("image.pushed", pushed.Ref().String()), Type: events.TypeImagePushed,
		Source: "/slipway/ingest/dev-registry", Environment: "dev", Subject: pushed.Ref().String(), Data: pushed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(js, "").Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	if img := m.image(t, "/apps/web"); !strings.Contains(img, "apps/web:1.1.0") {
		t.Fatalf("after the push /apps/web runs %s", img)
	}

	out, errOut, code := runCLI(t, t.Context(), "rollback", "int-a", "apps/web", "--config", path, "--reason", "1.1.0 leaks", "--timeout", "2m")
	if code != 0 || !strings.Contains(out, "deployment.succeeded") {
		t.Fatalf("rollback: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if img := m.image(t, "/apps/web"); !strings.Contains(img, "apps/web:1.0.0") {
		t.Errorf("after the rollback /apps/web runs %s, want 1.0.0", img)
	}

	out, errOut, code = runCLI(t, t.Context(), "redeploy", "int-a", "/apps/web", "--config", path, "--timeout", "2m")
	if code != 0 || !strings.Contains(out, "deployment.succeeded") {
		t.Fatalf("redeploy: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if img := m.image(t, "/apps/web"); !strings.Contains(img, "apps/web:1.0.0") {
		t.Errorf("after the redeploy /apps/web runs %s, want 1.0.0 still", img)
	}
}
