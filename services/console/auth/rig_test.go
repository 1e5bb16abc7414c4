package auth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/console/auth"
)

// The provider's users: alice operates everywhere, bob views dev.
var (
	alice = testkit.OIDCUser{Username: "alice", Password: "alice-pw", Email: "alice@example.com", Name: "Alice", Groups: []string{"ops"}}
	bob   = testkit.OIDCUser{Username: "bob", Password: "bob-pw", Email: "bob@example.com", Name: "Bob", Groups: []string{"dev"}}
)

// clock is the console's clock in these tests: sessions end when a test
// moves it, not when a test has waited long enough.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects what the code under test logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// rigOptions vary the rig.
type rigOptions struct {
	// tls serves the console over HTTPS (its redirectUrl is https).
	tls        bool
	sessionTTL time.Duration
	// client is how the console reaches the provider (nil: default).
	client *http.Client
}

// rig is the console's login in front of two views behind it: GET /
// answers who the user is and their CSRF token, POST /change counts the
// changes it lets through. It runs against an embedded NATS with JetStream
// and the in-process OpenID provider, on an httptest server whose address
// is known before the provider registers the console's callback.
type rig struct {
	auth    *auth.Authenticator
	op      *testkit.OIDCProvider
	js      jetstream.JetStream
	srv     *httptest.Server
	url     string
	clock   *clock
	logs    *logBuffer
	changes atomic.Int64
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	r := &rig{clock: newClock(), logs: &logBuffer{}}
	_, r.js = testkit.NATS(t).Connect(t)
	r.op = testkit.NewOIDCProvider(t, alice, bob)
	r.srv = httptest.NewUnstartedServer(nil)
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	r.url = scheme + "://" + r.srv.Listener.Addr().String()
	clientID, secret := r.op.RegisterClient(t, r.url+"/auth/callback")
	cfg := &config.Config{
		Console: config.Console{
			SessionTTL: o.sessionTTL,
			Auth: config.ConsoleAuth{OIDC: &config.OIDC{
				Issuer: r.op.Issuer, ClientID: clientID, ClientSecret: secret,
				RedirectURL: r.url + "/auth/callback",
			}},
		},
		Roles: []config.Role{{Group: "ops", Environments: []string{"*"}, Can: []string{"operate"}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	checks := health.NewChecker()
	a, err := auth.New(ctx, auth.Options{Config: cfg, JS: r.js, Log: r.logs.logger(), Now: r.clock.Now, Health: checks, Client: o.client})
	if err != nil {
		t.Fatal(err)
	}
	r.auth = a
	e := echo.New()
	health.Mount(e, checks, prometheus.NewRegistry())
	a.Mount(e)
	g := e.Group("", a.Require())
	g.GET("/", func(c echo.Context) error {
		u := auth.UserOf(c)
		return c.JSON(http.StatusOK, me{User: u.Name, Groups: u.Groups, CSRF: u.CSRF, Via: u.Via})
	})
	g.POST("/change", func(c echo.Context) error {
		r.changes.Add(1)
		return c.NoContent(http.StatusNoContent)
	})
	r.srv.Config.Handler = e
	if o.tls {
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	t.Cleanup(r.srv.Close)
	return r
}

// me is what GET / of the rig answers.
type me struct {
	User   string   `json:"user"`
	Groups []string `json:"groups"`
	CSRF   string   `json:"csrf"`
	Via    string   `json:"via"`
}

// browser is a new browser: a cookie jar, following redirects.
func (r *rig) browser(t *testing.T) *http.Client {
	t.Helper()
	b := newJarClient(t)
	b.Transport = r.srv.Client().Transport
	return b
}

// newJarClient is a browser-like client: a cookie jar, following
// redirects.
func newJarClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// noFollow is b that stops at the first redirect, to look at it.
func noFollow(b *http.Client) *http.Client {
	c := *b
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// login logs user in through the provider's form, starting at
// /auth/login?next=next, and returns the last response (the page the
// login came back to, or where it stopped).
func (r *rig) login(t *testing.T, b *http.Client, u testkit.OIDCUser, next string) *http.Response {
	t.Helper()
	start := r.url + "/auth/login"
	if next != "" {
		start += "?next=" + url.QueryEscape(next)
	}
	resp := r.op.Login(t, b, start, u.Username, u.Password)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// loggedIn logs user in and returns what GET / says about them.
func (r *rig) loggedIn(t *testing.T, b *http.Client, u testkit.OIDCUser) me {
	t.Helper()
	resp := r.login(t, b, u, "/")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != r.url+"/" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("login of %s ended at %s with %d: %s", u.Username, resp.Request.URL, resp.StatusCode, body)
	}
	m, code := r.me(t, b)
	if code != http.StatusOK {
		t.Fatalf("GET / right after the login of %s: %d", u.Username, code)
	}
	return m
}

// me asks GET / as a script does (JSON), and returns who the console
// says the user is, and the status.
func (r *rig) me(t *testing.T, b *http.Client) (me, int) {
	t.Helper()
	resp := r.get(t, noFollow(b), "/", map[string]string{"Accept": "application/json"})
	defer resp.Body.Close()
	var m me
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
	}
	return m, resp.StatusCode
}

func (r *rig) get(t *testing.T, b *http.Client, path string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// post sends a form to path with csrf as its csrf field (none when empty)
// and header, without following a redirect, and returns the response.
func (r *rig) post(t *testing.T, b *http.Client, path, csrf string, header map[string]string) *http.Response {
	t.Helper()
	form := url.Values{}
	if csrf != "" {
		form.Set("csrf", csrf)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noFollow(b).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sessions lists the keys of the session bucket.
func (r *rig) sessions(t *testing.T) []string {
	t.Helper()
	kv, err := r.js.KeyValue(t.Context(), auth.SessionBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Keys can wait forever for a record that expires while it lists:
	// bounded, so that a test fails rather than hangs.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// hasSession reports whether the session bucket holds the session of
// the id in b's session cookie.
func (r *rig) hasSession(t *testing.T, id string) bool {
	t.Helper()
	kv, err := r.js.KeyValue(t.Context(), auth.SessionBucket)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(t.Context(), sha256Hex(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// cookie is the browser's cookie name for the console, or "".
func (r *rig) cookie(b *http.Client, name string) string {
	u, _ := url.Parse(r.url + "/")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
