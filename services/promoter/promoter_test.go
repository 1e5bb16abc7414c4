package promoter_test

import (
	"context"
	"fmt"
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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/platform/promoted"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
	"github.com/slipway-cd/slipway/services/promoter/copier"
)

// env is NATS, a promoter and the registries of two stages.
type env struct {
	t        *testing.T
	js       jetstream.JetStream
	cfg      *config.Config
	dev, tst string // registry hosts
	seen     *testkit.Recorder
}

// newEnv configures the promoter; tstHost may be a proxy in front of a
// registry, rules is the YAML of promotions, tstAuth the YAML of tst's
// registry credentials.
func newEnv(t *testing.T, devHost, tstHost, rules, tstAuth string) *env {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true %s } }
approvers: [ { name: rm, token: t } ]
promotions:
%s`, ns.URL, devHost, tstHost, tstAuth, rules)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, js: js, cfg: cfg, dev: devHost, tst: tstHost, seen: testkit.Record(t, js, "slipway.image.promoted.>", "slipway.promotion.failed.>", "slipway.approval.>")}
}

// start runs a promoter until the test ends.
func (e *env) start(svc *promoter.Service) {
	e.t.Helper()
	e.run(svc)
}

// run runs a promoter until the test ends or crash is called: the
// promoter stops wherever it is, as if its process ended.
func (e *env) run(svc *promoter.Service) (crash func()) {
	e.t.Helper()
	if svc.CopierOptions == nil {
		svc.CopierOptions = func(o *copier.Options) { o.Retries = 3 }
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	var result error // set before ended is closed
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("PROMOTER_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() {
		defer close(ended)
		result = svc.Run(ctx, app.Deps{Config: e.cfg, Log: log, JS: e.js, Stream: bus.DefaultStream,
			Metrics: prometheus.NewRegistry(), Health: health.NewChecker()})
	}()
	e.t.Cleanup(func() {
		cancel()
		<-ended
		if result != nil {
			e.t.Errorf("promoter: %v", result)
		}
	})
	// A promoter that refuses to start ends at once; the test ends with
	// its error rather than waiting for a consumer that never comes.
	testkit.WaitFor(e.t, "the promoter's consumer", func() bool {
		select {
		case <-ended:
			return true
		default:
		}
		_, err := e.js.Consumer(e.t.Context(), bus.DefaultStream, promoter.ConsumerName)
		return err == nil
	})
	select {
	case <-ended:
		e.t.Fatalf("the promoter ended at start: %v", result)
	default:
	}
	return cancel
}

// pushed announces an image in dev as ingest would.
func (e *env) pushed(repo, tag, digest string, at time.Time) events.Event {
	e.t.Helper()
	return e.pushedFrom(e.dev, repo, tag, digest, at)
}

// pushedFrom announces an image in dev that names registry as its host.
func (e *env) pushedFrom(registry, repo, tag, digest string, at time.Time) events.Event {
	e.t.Helper()
	d := events.ImagePushed{Environment: "dev", Registry: registry, Repository: repo, Tag: tag, Digest: digest,
		MediaType: "application/vnd.docker.distribution.manifest.v2+json", Source: "dev-registry", Format: "distribution",
		UpstreamID: "u", PushedAt: at}
	ev, err := events.New(e.t.Context(), events.Spec{ID: events.ID("image.pushed", d.Ref().String()), Type: events.TypeImagePushed,
		Source: "/slipway/ingest/dev-registry", Environment: "dev", Subject: d.Ref().String(), Time: at, Data: d})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(e.t.Context(), ev); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// drained waits until the promoter has dealt with every event.
func (e *env) drained() {
	e.t.Helper()
	testkit.WaitFor(e.t, "the promoter to deal with every event", func() bool {
		c, err := e.js.Consumer(e.t.Context(), bus.DefaultStream, promoter.ConsumerName)
		if err != nil {
			return false
		}
		info, err := c.Info(e.t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

const rule = `  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }`

// TestPromotesAndSkipsSecondTime: a matching push is copied by digest with
// its counts; announcing it again copies nothing and announces nothing.
func TestPromotesAndSkipsSecondTime(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule+"\n  - { name: other, from: dev, to: tst, repositories: [\"other/*\"] }", "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	dig := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")
	testkit.PushRandomImage(t, dev.Host+"/lib/base:1.0.0")

	cause := e.pushed("apps/web", "1.0.0", dig, time.Now())
	e.pushed("lib/base", "1.0.0", testkit.Digest(t, dev.Host+"/lib/base:1.0.0"), time.Now()) // no rule matches
	p := e.seen.Wait(t, events.TypeImagePromoted, 1)
	d, _ := events.DataAs[events.ImagePromoted](p[0])
	if d.Promotion != "dev-to-tst" || d.To.Digest != dig || d.To.Registry != tst.Host || d.BlobsCopied != 3 || d.BytesCopied == 0 {
		t.Errorf("image.promoted: %+v", d)
	}
	if events.CausationOf(p[0]) != cause.ID() {
		t.Errorf("causation %q, want %q", events.CausationOf(p[0]), cause.ID())
	}
	if got := testkit.Digest(t, tst.Host+"/apps/web:1.0.0"); got != dig {
		t.Errorf("tst has %s, want %s", got, dig)
	}

	// The same push again, as another event (a registry's second
	// notification with another id): nothing more.
	again := events.ImagePushed{Environment: "dev", Registry: dev.Host, Repository: "apps/web", Tag: "1.0.0", Digest: dig, PushedAt: time.Now()}
	ev, _ := events.New(t.Context(), events.Spec{ID: "another-id", Type: events.TypeImagePushed, Source: "/t", Environment: "dev", Subject: "x", Data: again})
	if _, err := bus.NewPublisher(e.js, "").Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 2 && n != 1 {
		t.Errorf("%d image.promoted", n)
	}
	for _, p := range e.seen.Of(events.TypeImagePromoted)[1:] {
		d, _ := events.DataAs[events.ImagePromoted](p)
		if d.BlobsCopied != 0 {
			t.Errorf("a second promotion of the same image copied %d blobs", d.BlobsCopied)
		}
	}
	if _, err := testkit.TryDigest(tst.Host + "/lib/base:1.0.0"); err == nil {
		t.Error("lib/base matched no rule but was copied")
	}
}

// flaky is a proxy in front of a registry that answers 503 to the first
// n requests, and counts requests.
type flaky struct {
	fail     atomic.Int64
	requests atomic.Int64
	proxy    *httputil.ReverseProxy
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if f.fail.Add(-1) >= 0 {
		http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}`, http.StatusServiceUnavailable)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

func newFlaky(t *testing.T, target *testkit.Registry, failures int64) string {
	t.Helper()
	u, _ := url.Parse(target.URL)
	f := &flaky{proxy: httputil.NewSingleHostReverseProxy(u)}
	f.fail.Store(failures)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestTargetDownForAWhile: 503s are retried (by the copier, then by
// redelivery) until the copy succeeds; one image.promoted, no failure.
func TestTargetDownForAWhile(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	proxy := newFlaky(t, tst, 8)
	e := newEnv(t, dev.Host, proxy, rule, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	e.seen.Wait(t, events.TypeImagePromoted, 1)
	e.drained()
	if n := len(e.seen.Of(events.TypePromotionFailed)); n != 0 {
		t.Errorf("%d promotion.failed, want none", n)
	}
}

// TestWrongCredentialsFailOnce: a 401 is permanent: one promotion.failed,
// no retries.
func TestWrongCredentialsFailOnce(t *testing.T) {
	dev := testkit.NewRegistry(t, testkit.RegistryOptions{})
	tst := testkit.NewRegistry(t, testkit.RegistryOptions{Username: "slipway", Password: "right"})
	e := newEnv(t, dev.Host, tst.Host, rule, ", username: slipway, password: wrong")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	f := e.seen.Wait(t, events.TypePromotionFailed, 1)
	e.drained()
	d, _ := events.DataAs[events.PromotionFailed](f[0])
	if d.Retryable || d.Attempt != 1 || !strings.Contains(strings.ToLower(d.Error), "unauthorized") {
		t.Errorf("promotion.failed: %+v", d)
	}
	if n := len(e.seen.Of(events.TypePromotionFailed)); n != 1 {
		t.Errorf("%d promotion.failed, want 1", n)
	}
	if strings.Contains(d.Error, "wrong") {
		t.Error("the error leaks the password")
	}
}

// TestRequireSignature: a rule that requires a signature refuses an
// unsigned image, and says so.
func TestRequireSignature(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, require: { referrers: ["application/vnd.dev.cosign.artifact.sig.v1+json"] } }`, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	f := e.seen.Wait(t, events.TypePromotionFailed, 1)
	d, _ := events.DataAs[events.PromotionFailed](f[0])
	if d.Retryable || !strings.Contains(d.Error, "cosign") {
		t.Errorf("promotion.failed: %+v", d)
	}
	if _, err := testkit.TryDigest(tst.Host + "/apps/web:1.0.0"); err == nil {
		t.Error("the unsigned image was copied")
	}
}

// TestSoakTime: with minAge, a push is promoted only once it has been in
// its stage that long; until then the event waits in JetStream (a delayed
// redelivery), not in memory.
func TestSoakTime(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, minAge: 250ms }`, "")
	var clock atomic.Pointer[time.Time]
	pushedAt := time.Now()
	clock.Store(&pushedAt)
	e.start(&promoter.Service{Now: func() time.Time { return *clock.Load() }})
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), pushedAt)

	// The first delivery is handed back to soak.
	testkit.WaitFor(t, "the push to be handed back", func() bool {
		c, err := e.js.Consumer(t.Context(), bus.DefaultStream, promoter.ConsumerName)
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.Delivered.Consumer >= 1 && info.NumAckPending == 1
	})
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Fatalf("promoted before its soak time")
	}
	later := pushedAt.Add(time.Hour)
	clock.Store(&later)
	e.seen.Wait(t, events.TypeImagePromoted, 1)
}

// TestRejectedApprovalCopiesNothing: the rule asks; a rejection is final.
func TestRejectedApprovalCopiesNothing(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, approval: { required: true, approvers: [rm] } }`, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	e.pushed("apps/web", "1.0.0", testkit.Digest(t, dev.Host+"/apps/web:1.0.0"), time.Now())
	req := e.seen.Wait(t, events.TypeApprovalRequested, 1)
	ar, _ := events.DataAs[events.ApprovalRequested](req[0])
	if ar.ExpiresAt.Sub(time.Now()) < 71*time.Hour {
		t.Errorf("expires at %s, want the 72h default", ar.ExpiresAt)
	}

	store, err := approval.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.Decide(t.Context(), ar.ApprovalID, "rm", false, "not this one", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := approval.DecisionEvent(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Errorf("%d image.promoted after a rejection", n)
	}
	if _, err := testkit.TryDigest(tst.Host + "/apps/web:1.0.0"); err == nil {
		t.Error("copied after a rejection")
	}
}

// TestPromotedDigestIsRecordedBeforeTheManifestLands: the target registry
// sends its push webhook once the manifest is stored, so the record that
// tells a cluster deploying only promoted images "this digest is being
// promoted here" must exist by the time the manifest PUT reaches the
// registry. The registry's front checks the bucket at that moment.
func TestPromotedDigestIsRecordedBeforeTheManifestLands(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	u, _ := url.Parse(tst.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	var js atomic.Pointer[jetstream.JetStream]
	var puts, recordedAtPut atomic.Int64
	var dig atomic.Pointer[string]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			puts.Add(1)
			if store, err := promoted.Bind(r.Context(), *js.Load()); err == nil {
				if _, ok, err := store.Get(r.Context(), "tst", *dig.Load()); err == nil && ok {
					recordedAtPut.Add(1)
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	e := newEnv(t, dev.Host, strings.TrimPrefix(front.URL, "http://"), rule, "")
	js.Store(&e.js)
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	d := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")
	dig.Store(&d)
	e.start(promoter.New())
	cause := e.pushed("apps/web", "1.0.0", d, time.Now())
	e.seen.Wait(t, events.TypeImagePromoted, 1)

	if puts.Load() == 0 || recordedAtPut.Load() != puts.Load() {
		t.Fatalf("%d of %d manifest PUTs found the digest recorded as promoted", recordedAtPut.Load(), puts.Load())
	}
	store, err := promoted.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := store.Get(t.Context(), "tst", d)
	if err != nil || !ok {
		t.Fatalf("record: %v %v", ok, err)
	}
	if rec.Rule != "dev-to-tst" || rec.Repository != "apps/web" || rec.Tag != "1.0.0" || rec.CauseID != cause.ID() || rec.ApprovalID != "" {
		t.Errorf("record %+v", rec)
	}
	if _, ok, _ := store.Get(t.Context(), "dev", d); ok {
		t.Error("the digest is recorded as promoted into its source environment")
	}
}
