package auth_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/slipway-cd/slipway/pkg/events"
)

func TestLoginCreatesASessionNamingTheUserAndTheirGroups(t *testing.T) {
	r := newRig(t, rigOptions{})
	b := r.browser(t)

	m := r.loggedIn(t, b, alice)
	if m.User != "alice@example.com" || !slices.Equal(m.Groups, []string{"ops"}) || m.Via != events.ViaConsole {
		t.Fatalf("logged in as %+v, want alice@example.com in [ops] via console", m)
	}
	if len(m.CSRF) < 43 {
		t.Fatalf("session's CSRF token %q is shorter than 256 bits", m.CSRF)
	}
	// The cookie holds a random id; the bucket knows it only by its hash.
	id := r.cookie(b, "slipway-session")
	if len(id) != 43 || strings.Contains(id, "alice") {
		t.Fatalf("session cookie %q is not a 256-bit random id", id)
	}
	if keys := r.sessions(t); !slices.Equal(keys, []string{sha256Hex(id)}) {
		t.Fatalf("session bucket keys %v, want only the hash of the cookie's id", keys)
	}
	// A second login is a second session, with its own token.
	b2 := r.browser(t)
	if m2 := r.loggedIn(t, b2, bob); m2.User != "bob@example.com" || m2.CSRF == m.CSRF {
		t.Fatalf("bob's session: %+v (alice's token %q)", m2, m.CSRF)
	}
	if n := len(r.sessions(t)); n != 2 {
		t.Fatalf("%d sessions after two logins", n)
	}
}

func TestLoginSendsPKCEStateAndNonceAndSetsAShortLivedLoginCookie(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp := r.get(t, noFollow(r.browser(t)), "/auth/login?next=/x", nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /auth/login: %d", resp.StatusCode)
	}
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := to.Query()
	if !strings.HasPrefix(to.String(), r.op.Issuer+"/") || q.Get("code_challenge_method") != "S256" ||
		len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 43 || len(q.Get("nonce")) < 43 ||
		!strings.Contains(" "+q.Get("scope")+" ", " openid ") || q.Get("response_type") != "code" {
		t.Fatalf("authorization request %s lacks PKCE (S256), state, nonce or openid", to)
	}
	var login *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "slipway-login" {
			login = c
		}
	}
	if login == nil || !login.HttpOnly || login.SameSite != http.SameSiteLaxMode || login.Path != "/" ||
		login.MaxAge <= 0 || login.MaxAge > 600 || login.Secure {
		t.Fatalf("login cookie %+v: want HttpOnly, SameSite=Lax, Path=/, at most 10 minutes, not Secure over http", login)
	}
	// The state is kept server-side: the cookie is not the state.
	if login.Value == q.Get("state") || strings.Contains(to.RawQuery, login.Value) {
		t.Fatal("the login cookie's value travels to the provider")
	}
}

// authorizeURL starts a login in b and returns where the console sends
// the browser (the provider's authorization endpoint), without going.
func (r *rig) authorizeURL(t *testing.T, b *http.Client, next string) *url.URL {
	t.Helper()
	resp := r.get(t, noFollow(b), "/auth/login?next="+url.QueryEscape(next), nil)
	resp.Body.Close()
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /auth/login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return u
}

func withQuery(u *url.URL, key, value string) string {
	v := u.Query()
	v.Set(key, value)
	c := *u
	c.RawQuery = v.Encode()
	return c.String()
}

func TestLoginTamperedOnTheWayIsRefusedWithoutASession(t *testing.T) {
	r := newRig(t, rigOptions{})
	cases := []struct {
		name   string
		tamper func(u *url.URL) string
		code   int
		says   string
	}{
		{"state changed", func(u *url.URL) string { return withQuery(u, "state", "forged-state") },
			http.StatusBadRequest, "state does not match"},
		{"PKCE challenge of another verifier", func(u *url.URL) string {
			return withQuery(u, "code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
		}, http.StatusBadGateway, "did not accept this login"},
		{"nonce changed", func(u *url.URL) string { return withQuery(u, "nonce", "forged-nonce") },
			http.StatusUnauthorized, "not issued for this login"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := r.browser(t)
			start := tc.tamper(r.authorizeURL(t, b, "/"))
			resp := r.op.Login(t, b, start, alice.Username, alice.Password)
			defer resp.Body.Close()
			text := body(t, resp)
			if resp.StatusCode != tc.code || !strings.Contains(text, tc.says) {
				t.Fatalf("tampered login ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, text)
			}
			if r.cookie(b, "slipway-session") != "" {
				t.Fatal("a tampered login got a session cookie")
			}
			if _, code := r.me(t, b); code != http.StatusUnauthorized {
				t.Fatalf("GET / after a tampered login: %d, want 401", code)
			}
		})
	}
	if keys := r.sessions(t); len(keys) != 0 {
		t.Fatalf("tampered logins left sessions: %v", keys)
	}
}

func TestLoginCallbackWorksOnceAndOnlyInTheBrowserThatStartedIt(t *testing.T) {
	r := newRig(t, rigOptions{})

	// Another browser finishing the victim's login (login CSRF): the
	// callback has no login of that browser's.
	victim, attacker := r.browser(t), r.browser(t)
	start := r.authorizeURL(t, victim, "/").String()
	resp := r.op.Login(t, attacker, start, alice.Username, alice.Password)
	text := body(t, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(text, "unknown or has expired") {
		t.Fatalf("callback in another browser: %d %s", resp.StatusCode, text)
	}
	if r.cookie(attacker, "slipway-session") != "" || len(r.sessions(t)) != 0 {
		t.Fatal("a login finished in another browser made a session")
	}

	// The same browser's callback, replayed after it succeeded.
	b := r.browser(t)
	resp = r.login(t, b, alice, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	callback := resp.Request.Response.Request.URL // the redirect before GET /
	if callback.Path != "/auth/callback" {
		t.Fatalf("the login came back through %s, want /auth/callback", callback)
	}
	replay := r.get(t, noFollow(b), callback.RequestURI(), map[string]string{"Accept": "text/html"})
	defer replay.Body.Close()
	if replay.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed callback: %d, want 400", replay.StatusCode)
	}
	if n := len(r.sessions(t)); n != 1 {
		t.Fatalf("%d sessions after one login and a replayed callback", n)
	}
}

func TestLoginNeverRedirectsOffTheConsole(t *testing.T) {
	r := newRig(t, rigOptions{})
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "/auth/logout"} {
		t.Run(next, func(t *testing.T) {
			b := r.browser(t)
			resp := r.login(t, b, alice, next)
			if got := resp.Request.URL.String(); got != r.url+"/" {
				t.Fatalf("login with next=%q ended at %s, want the console's root", next, got)
			}
		})
	}
	t.Run("a local path", func(t *testing.T) {
		resp := r.login(t, r.browser(t), alice, "/images/sha256:abc?tab=timeline")
		if got := resp.Request.URL.RequestURI(); got != "/images/sha256:abc?tab=timeline" {
			t.Fatalf("login ended at %s, want the page it was asked for", got)
		}
	})
}

func TestProviderErrorShowsAPageNotAStack(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp := r.get(t, r.browser(t), "/auth/callback?error=access_denied&error_description="+
		url.QueryEscape("<script>alert(1)</script> user said no"), map[string]string{"Accept": "text/html"})
	defer resp.Body.Close()
	text := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("provider error: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(text, "access_denied") || !strings.Contains(text, "&lt;script&gt;alert(1)&lt;/script&gt; user said no") ||
		strings.Contains(text, "<script>") || !strings.Contains(text, `href="/auth/login`) {
		t.Fatalf("provider error page does not say what happened, escaped, with a way back: %s", text)
	}
}

func TestLoginWithCookiesForHTTPSIsSecureAndHostPrefixed(t *testing.T) {
	r := newRig(t, rigOptions{tls: true})
	b := r.browser(t)
	var set []*http.Cookie
	base := b.Transport
	b.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err == nil && strings.HasPrefix(req.URL.String(), r.url) {
			set = append(set, resp.Cookies()...)
		}
		return resp, err
	})
	if m := r.loggedIn(t, b, alice); m.User != "alice@example.com" {
		t.Fatalf("logged in as %q", m.User)
	}
	seen := map[string]bool{}
	for _, c := range set {
		seen[c.Name] = true
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s: %+v; want __Host-, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", c.Name, c)
		}
	}
	if !seen["__Host-slipway-login"] || !seen["__Host-slipway-session"] {
		t.Fatalf("cookies set: %v", seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
