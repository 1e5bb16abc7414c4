package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/console/auth"
)

// waitTimeout bounds every wait on something asynchronous: a deadline,
// never a sleep.
const waitTimeout = 30 * time.Second

// natsRig is an embedded JetStream with the Slipway stream.
type natsRig struct {
	nats *testkit.NATSServer
	js   jetstream.JetStream
	pub  *bus.Publisher
}

func newNATSRig(t testing.TB) *natsRig {
	t.Helper()
	r := &natsRig{nats: testkit.NATS(t)}
	_, r.js = r.nats.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), r.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	r.pub = bus.NewPublisher(r.js, "")
	return r
}

// push publishes an image.pushed event of repo:tag@digest in env.
func (r *natsRig) push(t testing.TB, env, repo, tag, digest string) events.Event {
	t.Helper()
	d := events.ImagePushed{Environment: env, Registry: "registry." + env, Repository: repo, Tag: tag, Digest: digest,
		Source: env + "-registry", Format: "distribution", UpstreamID: repo + tag + digest, PushedAt: time.Now().UTC()}
	return r.publish(t, events.Spec{
		ID: events.ID("test-push", env, repo, tag, digest), Type: events.TypeImagePushed, Source: "/test",
		Environment: env, Subject: d.Ref().String(), Data: d,
	})
}

func (r *natsRig) publish(t testing.TB, spec events.Spec) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.pub.Publish(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// digestOf is a valid-looking digest for n.
func digestOf(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// eventually waits for cond, failing with what it says once the deadline
// passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitTimeout, what)
		}
		<-tick.C
	}
}

// consoleRig is the console's server on an embedded JetStream, served by
// httptest; users are chosen per request with the X-Test-User header
// among the rig's users (none: the login's own user).
type consoleRig struct {
	*natsRig
	cfg   *config.Config
	srv   *server
	http  *httptest.Server
	users map[string]auth.User
}

// testConfig has three environments, dev-only viewers, dev/tst approvers
// and prd operators.
func testConfig() *config.Config {
	cfg := &config.Config{}
	for _, e := range []string{"dev", "tst", "prd"} {
		cfg.Environments = append(cfg.Environments, config.Environment{Name: e, Registry: config.Registry{Host: "registry." + e}})
	}
	cfg.Console.Auth.None = true
	cfg.Roles = []config.Role{
		{Group: "developers", Environments: []string{"dev"}, Can: []string{"view"}},
		{Group: "release", Environments: []string{"dev", "tst", "prd"}, Can: []string{"approve"}},
		{Group: "ops", Environments: []string{"dev", "tst", "prd"}, Can: []string{"operate"}},
	}
	return cfg
}

func newConsoleRig(t testing.TB, cfg *config.Config) *consoleRig {
	t.Helper()
	r := &consoleRig{natsRig: newNATSRig(t), cfg: cfg, users: map[string]auth.User{
		"dev":     {Identity: access.Identity{Name: "dana", Groups: []string{"developers"}, Via: events.ViaConsole}},
		"release": {Identity: access.Identity{Name: "rita", Groups: []string{"release"}, Via: events.ViaConsole}},
		"ops":     {Identity: access.Identity{Name: "otto", Groups: []string{"ops"}, Via: events.ViaConsole}},
	}}
	testUser = func(c echo.Context) (auth.User, bool) {
		u, ok := r.users[c.Request().Header.Get("X-Test-User")]
		if ok {
			u.CSRF = auth.UserOf(c).CSRF
		}
		return u, ok
	}
	t.Cleanup(func() { testUser = nil })
	d := app.Deps{Config: cfg, Log: slog.New(slog.DiscardHandler), JS: r.js, Stream: bus.DefaultStream,
		Metrics: prometheus.NewRegistry(), Health: health.NewChecker()}
	srv, err := newServer(t.Context(), d, d.Log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// The roles decide, as they do with OIDC (auth.none would allow all).
	srv.policy = access.New(cfg)
	r.srv = srv
	r.http = httptest.NewServer(srv.handler())
	t.Cleanup(r.http.Close)
	t.Cleanup(srv.close) // first: ends the live streams, so that Close returns
	return r
}

// get asks path as user ("" for the login's user) and returns the
// response, closed when the test ends.
func (r *consoleRig) get(t testing.TB, user, path string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-User", user)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func (r *consoleRig) body(t testing.TB, user, path string) (int, string) {
	t.Helper()
	res := r.get(t, user, path)
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}
