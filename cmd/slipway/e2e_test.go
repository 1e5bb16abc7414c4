package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// TestPushDeploysOnEveryClusterOfTheEnvironment is the deployer's story end
// to end, with real parts only: a push to an in-process Distribution
// registry notifies ingest, whose event the deployer turns into updates on
// the two Marathon clusters of the environment. Both opted-in apps end up
// running the digest-pinned image; the app without the label is untouched.
func TestPushDeploysOnEveryClusterOfTheEnvironment(t *testing.T) {
	ns := testkit.NATS(t)
	// Apps run images of the registry created below, once ingest listens
	// (the registry needs ingest's address); its host is not known yet.
	const oldTag = "1.0.0"
	apps := func(host string) (one, two []string) {
		img := host + "/apps/web:" + oldTag
		labelled := func(id, policy string) string {
			return fmt.Sprintf(`{"id":%q,"instances":1,"labels":{"slipway.policy":%q},"container":{"type":"DOCKER","docker":{"image":%q}}}`, id, policy, img)
		}
		return []string{labelled("/int/web", "all"), fmt.Sprintf(`{"id":"/int/legacy","container":{"type":"DOCKER","docker":{"image":%q}}}`, img)},
			[]string{labelled("/int/web", "minor")}
	}
	one, two := startMarathon(t), startMarathon(t)

	// The registry's host is known once it runs, after ingest: ingest
	// starts with a placeholder (events take the host from the
	// notifications), the deployer with the real one.
	configFor := func(registryHost string) *config.Config {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q, insecure: true } } ]
ingest:
  listen: "127.0.0.1:0"
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { header: { name: Authorization, value: "Bearer e2e" } } }
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q } }
  - { name: azure-int-2, environment: dev, marathon: { url: %q } }
deployer: { pollInterval: 100ms }
ops: { listen: "off" }
`, ns.URL, registryHost, one.url, two.url)), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// Ingest and the deployer run as two processes would. The registry
	// needs ingest's address, and ingest the registry's host (it refuses
	// pushes of any other registry): take the address first.
	ingestAddr := testkit.FreeAddr(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{
		NotifyURL:     "http://" + ingestAddr + "/webhooks/dev-registry",
		NotifyHeaders: map[string][]string{"Authorization": {"Bearer e2e"}},
	})
	cfg := configFor(reg.Host)
	cfg.Ingest.Listen = ingestAddr
	js, got := recordStream(t, ns, cfg, "slipway.deployment.>")
	startIngest(t, cfg)
	old := reg.Host + "/apps/web:" + oldTag
	appsOne, appsTwo := apps(reg.Host)
	one.load(t, appsOne...)
	two.load(t, appsTwo...)
	runService(t, configFor(reg.Host), deployer.New())

	for _, cl := range []string{"azure-int", "azure-int-2"} {
		testkit.WaitFor(t, "the deployer's consumer of "+cl, func() bool {
			_, err := js.Consumer(t.Context(), bus.DefaultStream, deployer.ConsumerName(cl))
			return err == nil
		})
	}

	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.1.0")
	dig := testkit.Digest(t, reg.Host+"/apps/web:1.1.0")
	succeeded := got.Wait(t, events.TypeDeploymentSucceeded, 2)

	want := reg.Host + "/apps/web:1.1.0@" + dig
	clusters := map[string]bool{}
	for _, e := range succeeded {
		d, _ := events.DataAs[events.Deployment](e)
		clusters[d.Cluster] = true
		if d.ToImage != want || d.AppID != "/int/web" {
			t.Errorf("succeeded: %+v", d)
		}
	}
	if len(clusters) != 2 {
		t.Errorf("succeeded on %v, want both clusters", clusters)
	}
	for name, m := range map[string]*marathonServer{"azure-int": one, "azure-int-2": two} {
		if img := m.image(t, "/int/web"); img != want {
			t.Errorf("%s /int/web runs %s, want %s", name, img, want)
		}
	}
	if img := one.image(t, "/int/legacy"); img != old {
		t.Errorf("/int/legacy (no label) runs %s, want it untouched", img)
	}

	// slipway status shows what runs where.
	out, err := execute(t, t.Context(), "status", "--nats", ns.URL, "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var records []struct {
		Cluster, AppID, Image, EventID string
		Managed                        bool
	}
	if err := json.Unmarshal([]byte(out), &records); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	deployed := 0
	for _, r := range records {
		if r.AppID == "/int/web" && r.Image == want && r.EventID != "" {
			deployed++
		}
		if r.AppID == "/int/legacy" && (r.Managed || r.Image != old) {
			t.Errorf("status lists the app without the label as %+v, want it unmanaged at %s", r, old)
		}
	}
	if deployed != 2 {
		t.Errorf("status shows /int/web at %s on %d clusters, want 2:\n%s", want, deployed, out)
	}
	table, err := execute(t, t.Context(), "status", "--nats", ns.URL)
	if err != nil || !strings.Contains(table, "CLUSTER") || !strings.Contains(table, "azure-int-2") {
		t.Errorf("status table: %v\n%s", err, table)
	}
}

type marathonServer struct {
	emu *emulator.Emulator
	url string
}

func startMarathon(t *testing.T) *marathonServer {
	t.Helper()
	emu := emulator.New(emulator.Options{DeployDuration: 20 * time.Millisecond})
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() { srv.Close(); emu.Close() })
	return &marathonServer{emu: emu, url: srv.URL}
}

// load seeds running apps.
func (m *marathonServer) load(t *testing.T, apps ...string) {
	t.Helper()
	if err := m.emu.Load([]byte("[" + strings.Join(apps, ",") + "]")); err != nil {
		t.Fatal(err)
	}
}

// recordStream creates the event stream cfg describes on ns and records the
// events of subjects from then on.
func recordStream(t *testing.T, ns *testkit.NATSServer, cfg *config.Config, subjects ...string) (jetstream.JetStream, *testkit.Recorder) {
	t.Helper()
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	return js, testkit.Record(t, js, subjects...)
}

// startIngest runs ingest as its own process and returns its base URL once
// it is ready.
func startIngest(t *testing.T, cfg *config.Config) string {
	t.Helper()
	in := ingest.New()
	listening := make(chan string, 1)
	in.Listening = func(a net.Addr) { listening <- a.String() }
	done := runService(t, cfg, in)
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("ingest ended before it listened: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("ingest did not listen within 60s")
	}
	testkit.WaitReady(t, "http://"+addr+"/readyz", nil)
	return "http://" + addr
}

// runService runs services as one process until the test ends.
func runService(t *testing.T, cfg *config.Config, services ...app.Service) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out io.Writer = io.Discard
	if os.Getenv("SLIPWAY_SYSTEM_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, nil)).With("test", t.Name())
	go func() { done <- app.Run(ctx, cfg, log, services...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", services[0].Name(), err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("%s did not stop", services[0].Name())
		}
	})
	return done
}

// putImage changes the app's image through Marathon's API, overriding any
// deployment in progress, as a person (or another deployer) would.
func (m *marathonServer) putImage(t *testing.T, id, image string) {
	t.Helper()
	testkit.PutJSON(t, m.url+"/v2/apps"+id+"?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+image+`"}}}`)
}

func (m *marathonServer) image(t *testing.T, id string) string {
	t.Helper()
	return m.app(t, id).image()
}

// marathonApp is what a test reads of an emulated app.
type marathonApp struct {
	Instances      int `json:"instances"`
	TasksHealthy   int `json:"tasksHealthy"`
	TasksUnhealthy int `json:"tasksUnhealthy"`
	Deployments    []struct {
		ID string `json:"id"`
	} `json:"deployments"`
	Container struct {
		Docker struct {
			Image string `json:"image"`
		} `json:"docker"`
	} `json:"container"`
}

func (a marathonApp) image() string { return a.Container.Docker.Image }

func (m *marathonServer) app(t *testing.T, id string) marathonApp {
	t.Helper()
	raw, ok := m.emu.App(id)
	if !ok {
		t.Fatalf("no app %s", id)
	}
	var a marathonApp
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}
