package deployer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// deadline bounds every wait of these tests; nothing waits by sleeping.
const deadline = 30 * time.Second

const registry = "registry.dev.example:5000"

// digest makes a valid, distinct digest from a seed.
func digest(seed string) string {
	return "sha256:" + events.ID(seed)[0:8] + strings.Repeat("0", 56)
}

// marathonCluster is an emulated Marathon serving one cluster.
type marathonCluster struct {
	name string
	emu  *emulator.Emulator
	url  string
	// auth is the YAML of the cluster's marathon.auth, if any.
	auth string
}

func newCluster(t testing.TB, name string, opts emulator.Options, apps ...string) *marathonCluster {
	t.Helper()
	if opts.DeployDuration == 0 {
		opts.DeployDuration = 20 * time.Millisecond
	}
	emu := emulator.New(opts)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() { srv.Close(); emu.Close() })
	if len(apps) > 0 {
		if err := emu.Load([]byte("[" + strings.Join(apps, ",") + "]")); err != nil {
			t.Fatal(err)
		}
	}
	return &marathonCluster{name: name, emu: emu, url: srv.URL}
}

// appJSON is a Marathon app definition running image, with labels.
func appJSON(id, image string, labels map[string]string) string {
	l, _ := json.Marshal(labels)
	return fmt.Sprintf(`{"id":%q,"instances":2,"cpus":0.1,"mem":64,"labels":%s,
		"networks":[{"mode":"container/bridge"}],
		"container":{"type":"DOCKER","docker":{"image":%q,"forcePullImage":false,"parameters":[{"key":"log-driver","value":"json-file"}]},
		"portMappings":[{"containerPort":8080,"hostPort":0,"protocol":"tcp","name":"http"}],
		"volumes":[{"containerPath":"/data","hostPath":"/srv/data","mode":"RW"}]},
		"healthChecks":[{"protocol":"MESOS_HTTP","path":"/healthz","portIndex":0,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3}]}`,
		id, l, image)
}

// image returns the image an app of the cluster runs.
func (m *marathonCluster) image(t *testing.T, id string) string {
	t.Helper()
	raw, ok := m.emu.App(id)
	if !ok {
		t.Fatalf("%s: no app %s", m.name, id)
	}
	var a marathon.App
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a.Image()
}

// puts counts the PUTs the cluster received for an app.
func (m *marathonCluster) puts(id string) int {
	n := 0
	for _, r := range m.emu.Requests() {
		if r.Method == "PUT" && strings.HasSuffix(r.Path, "/v2/apps"+id) {
			n++
		}
	}
	return n
}

// env is NATS plus the configuration of a deployer for some clusters.
type env struct {
	// metrics is the registry of the deployers the env starts.
	metrics *prometheus.Registry
	t       testing.TB
	ns      *testkit.NATSServer
	js      jetstream.JetStream
	cfg     *config.Config
	rec     *testkit.Recorder
}

func newEnv(t testing.TB, clusters ...*marathonCluster) *env {
	return newEnvWith(t, "", clusters...)
}

// newEnvWith is newEnv with extra YAML for each cluster (under its
// marathon/deploy keys), e.g. `deploy: { timeout: 300ms }`.
func newEnvWith(t testing.TB, clusterExtra string, clusters ...*marathonCluster) *env {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	var cl strings.Builder
	for _, c := range clusters {
		auth := c.auth
		if auth == "" {
			auth = "{ none: true }"
		}
		fmt.Fprintf(&cl, "  - name: %s\n    environment: dev\n    marathon: { url: %q, auth: %s }\n", c.name, c.url, auth)
		if clusterExtra != "" {
			fmt.Fprintf(&cl, "    %s\n", clusterExtra)
		}
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q } } ]
deployer: { syncInterval: 1m, reconcileInterval: 200ms, pollInterval: 100ms }
clusters:
%s`, ns.URL, registry, cl.String())), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ns: ns, js: js, cfg: cfg, rec: record(t, js), metrics: prometheus.NewRegistry()}
}

// start runs a deployer until the returned stop is called (or the test ends).
func (e *env) start(svc *deployer.Service) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wait := e.startCtx(ctx, svc)
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wait() }) }
	e.t.Cleanup(stop)
	return stop
}

// startCtx runs a deployer until ctx ends; wait waits for it to return.
func (e *env) startCtx(ctx context.Context, svc *deployer.Service) (wait func()) {
	e.t.Helper()
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("DEPLOYER_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() {
		done <- svc.Run(ctx, app.Deps{
			Config: e.cfg, Log: log, JS: e.js, Stream: bus.DefaultStream,
			Metrics: e.metrics, Health: health.NewChecker(),
		})
	}()
	var once sync.Once
	wait = func() {
		once.Do(func() {
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("deployer: %v", err)
				}
			case <-time.After(deadline):
				e.t.Error("deployer did not stop")
			}
		})
	}
	e.t.Cleanup(wait)
	e.waitConsumers()
	return wait
}

// drained waits until every cluster consumer has been handed every event
// of the stream and acknowledged it: the deployer has dealt with all of it.
func (e *env) drained() {
	e.t.Helper()
	testkit.WaitFor(e.t, "the deployer to deal with every event", func() bool {
		for _, name := range e.consumerNames() {
			cons, err := e.js.Consumer(e.t.Context(), bus.DefaultStream, name)
			if err != nil {
				return false
			}
			info, err := cons.Info(e.t.Context())
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 || info.NumRedelivered > 0 {
				return false
			}
		}
		return true
	})
}

// waitConsumers waits until every cluster's durable consumer exists, so that
// events published next are not before its start (it delivers new ones).
func (e *env) waitConsumers() {
	e.t.Helper()
	testkit.WaitFor(e.t, "deployer consumers", func() bool {
		for _, name := range e.consumerNames() {
			if _, err := e.js.Consumer(e.t.Context(), bus.DefaultStream, name); err != nil {
				return false
			}
		}
		return true
	})
}

// consumerNames are the durable consumers of every cluster: its events'
// and its manual actions'.
func (e *env) consumerNames() []string {
	var names []string
	for _, c := range e.cfg.Clusters {
		names = append(names, deployer.ConsumerName(c.Name), deployer.ActionConsumerName(c.Name))
	}
	return names
}

// push publishes an image.pushed event as ingest would.
func (e *env) push(repo, tag, dig string, at time.Time) events.Event {
	e.t.Helper()
	data := events.ImagePushed{Environment: "dev", Registry: registry, Repository: repo, Tag: tag, Digest: dig,
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 700, Source: "dev-registry", Format: "distribution",
		UpstreamID: "u-" + tag + dig, PushedAt: at}
	ev, err := events.New(e.t.Context(), events.Spec{
		ID: events.ID("image.pushed", "dev", registry, repo, tag, dig), Type: events.TypeImagePushed,
		Source: "/slipway/ingest/dev-registry", Environment: "dev", Subject: data.Ref().String(), Time: at, Data: data,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(e.t.Context(), ev); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// promote publishes an image.promoted event into dev, as the promoter would.
func (e *env) promote(repo, tag, dig string) events.Event {
	e.t.Helper()
	to := events.ImageRef{Environment: "dev", Registry: registry, Repository: repo, Tag: tag, Digest: dig}
	from := events.ImageRef{Environment: "ci", Registry: "registry.ci.example", Repository: repo, Tag: tag, Digest: dig}
	ev, err := events.New(e.t.Context(), events.Spec{
		ID: events.ID("image.promoted", to.String()), Type: events.TypeImagePromoted, Source: "/slipway/promoter",
		Environment: "dev", Subject: to.String(), Data: events.ImagePromoted{Promotion: "ci-to-dev", From: from, To: to},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(e.t.Context(), ev); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// record records the deployer's events: deployments and drift.
func record(t testing.TB, js jetstream.JetStream) *testkit.Recorder {
	t.Helper()
	return testkit.Record(t, js, "slipway.deployment.>", "slipway.drift.>")
}

func deploymentOf(t *testing.T, e events.Event) events.Deployment {
	t.Helper()
	d, err := events.DataAs[events.Deployment](e)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
