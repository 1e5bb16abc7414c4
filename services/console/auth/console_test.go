package auth_test

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/console"
)

// running is a console service run on an embedded JetStream.
type running struct {
	url  string
	logs *logBuffer
	stop func() error
}

func natsWithStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := testkit.NATS(t).Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// runConsole runs the console service for cfg until stop (or the test's
// end); it fails the test if the console does not start.
func runConsole(t *testing.T, js jetstream.JetStream, cfg *config.Config) *running {
	t.Helper()
	r := &running{logs: &logBuffer{}}
	listening := make(chan net.Addr, 1)
	svc := console.New()
	svc.Listening = func(a net.Addr) { listening <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- svc.Run(ctx, app.Deps{Config: cfg, Log: r.logs.logger(), JS: js, Stream: bus.DefaultStream,
			Metrics: prometheus.NewRegistry(), Health: health.NewChecker()})
	}()
	var stopped bool
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = r.stop() })
	select {
	case a := <-listening:
		r.url = "http://" + a.String()
	case err := <-done:
		stopped = true
		t.Fatalf("console did not start: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("console not listening within a minute")
	}
	return r
}

// oidcConsole is a configuration of a console on addr logging in at op.
func oidcConsole(t *testing.T, op *testkit.OIDCProvider, addr string) *config.Config {
	t.Helper()
	callback := "http://" + addr + "/auth/callback"
	id, secret := op.RegisterClient(t, callback)
	return &config.Config{
		Console: config.Console{Listen: addr, Auth: config.ConsoleAuth{OIDC: &config.OIDC{
			Issuer: op.Issuer, ClientID: id, ClientSecret: secret, RedirectURL: callback,
		}}},
		Roles: []config.Role{{Group: "ops", Environments: []string{"*"}, Can: []string{"operate"}}},
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestConsoleLogsInShowsTheUserAndKeepsTheSessionAcrossARestart(t *testing.T) {
	js := natsWithStream(t)
	op := testkit.NewOIDCProvider(t, alice)
	addr := testkit.FreeAddr(t)
	cfg := oidcConsole(t, op, addr)
	c := runConsole(t, js, cfg)
	testkit.WaitReady(t, c.url+"/readyz", nil)

	b := newJarClient(t)
	resp := op.Login(t, b, c.url+"/auth/login?next=/", alice.Username, alice.Password)
	page := body(t, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" || !strings.Contains(page, alice.Email) {
		t.Fatalf("after login: %d at %s, page without %s:\n%s", resp.StatusCode, resp.Request.URL, alice.Email, page)
	}
	if !strings.Contains(c.logs.String(), "auth=oidc") {
		t.Fatal("the start-up line does not say the console logs users in with OIDC")
	}

	// Another console process (a restart, or another replica) knows the
	// session: it is kept in JetStream, not in the process.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	c = runConsole(t, js, cfg)
	resp, err := b.Get(c.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page = body(t, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, alice.Email) {
		t.Fatalf("after a restart: %d, page without %s", resp.StatusCode, alice.Email)
	}

	// The page's logout form carries the session's token, and works.
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no CSRF field:\n%s", page)
	}
	resp, err = noFollow(b).PostForm(c.url+"/auth/logout", map[string][]string{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout from the page's form: %d", resp.StatusCode)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.url+"/", nil)
	req.Header.Set("Accept", "text/html")
	if resp, err = noFollow(b).Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/auth/login") {
		t.Fatalf("GET / after logout: %d to %q, want the login", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestConsoleWithAuthNoneLetsAnonymousInAndWarns(t *testing.T) {
	js := natsWithStream(t)
	c := runConsole(t, js, &config.Config{Console: config.Console{Listen: "127.0.0.1:0", Auth: config.ConsoleAuth{None: true}}})
	resp, err := http.Get(c.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "anonymous") {
		t.Fatalf("GET / with auth.none: %d\n%s", resp.StatusCode, page)
	}
	logs := c.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "anyone who reaches the console may view and do everything") {
		t.Fatalf("no warning that anyone may do everything:\n%s", logs)
	}
}

func TestConsoleWithoutALoginRefusesToStart(t *testing.T) {
	cfg := &config.Config{Console: config.Console{Listen: "127.0.0.1:0"}}
	var p config.Problems
	console.New().CheckConfig(cfg, &p)
	if len(p) == 0 || !strings.Contains(p.Error(), "console.auth") {
		t.Fatalf("config check of a console without login: %v", p)
	}
	err := console.New().Run(t.Context(), app.Deps{Config: cfg, JS: natsWithStream(t), Stream: bus.DefaultStream,
		Metrics: prometheus.NewRegistry(), Health: health.NewChecker()})
	if err == nil || !strings.Contains(err.Error(), "console.auth") {
		t.Fatalf("Run without a login: %v, want a refusal naming console.auth", err)
	}
}

func TestConfigCheckWantsTheCallbackAtTheRootOfTheConsolesHost(t *testing.T) {
	for redirect, want := range map[string]string{
		"https://slipway.example/auth/callback":         "",
		"https://slipway.example/console/auth/callback": "console.auth.oidc.redirectUrl",
		// Not ending in /auth/callback at all is the file's own check's
		// (it says so once).
		"https://slipway.example/callback": "",
	} {
		cfg := &config.Config{Console: config.Console{Auth: config.ConsoleAuth{OIDC: &config.OIDC{
			Issuer: "https://sso.example", ClientID: "slipway", ClientSecret: "s", RedirectURL: redirect,
		}}}}
		var p config.Problems
		console.New().CheckConfig(cfg, &p)
		if want == "" && len(p) != 0 || want != "" && (len(p) != 1 || !strings.Contains(p.Error(), want) || !strings.Contains(p.Error(), "root of its host")) {
			t.Errorf("redirectUrl %s: problems %v, want %q", redirect, p, want)
		}
	}
}
