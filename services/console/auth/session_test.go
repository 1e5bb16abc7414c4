package auth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// expectLoginRequired checks that b's session is over: a page goes back
// to the login (and then to the page), a script gets 401.
func (r *rig) expectLoginRequired(t *testing.T, b *http.Client) {
	t.Helper()
	page := r.get(t, noFollow(b), "/?tab=prd", map[string]string{"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"})
	defer page.Body.Close()
	if page.StatusCode != http.StatusFound || page.Header.Get("Location") != "/auth/login?next=%2F%3Ftab%3Dprd" {
		t.Fatalf("page without a live session: %d to %q, want 302 to the login and back", page.StatusCode, page.Header.Get("Location"))
	}
	for _, h := range []map[string]string{
		{"Accept": "application/json"},
		{"Accept": "text/event-stream"},
		{"Accept": "text/html", "X-Requested-With": "fetch"},
		{"Accept": "*/*", "Sec-Fetch-Mode": "cors"},
	} {
		resp := r.get(t, noFollow(b), "/", h)
		var out map[string]string
		err := json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || err != nil || out["error"] != "login required" {
			t.Fatalf("script request %v without a live session: %d %v %v, want 401 JSON", h, resp.StatusCode, out, err)
		}
	}
}

func TestSessionEndsWithTheIDToken(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.op.SetTokenLifetime(10 * time.Minute)
	b := r.browser(t)
	r.loggedIn(t, b, alice)

	r.clock.Advance(9 * time.Minute)
	if _, code := r.me(t, b); code != http.StatusOK {
		t.Fatalf("GET / one minute before the ID token expires: %d", code)
	}
	r.clock.Advance(time.Minute + time.Second)
	r.expectLoginRequired(t, b)
	if keys := r.sessions(t); len(keys) != 0 {
		t.Fatalf("an expired session is still kept: %v", keys)
	}
	// Logging in again brings the user back to where they were (with a
	// token that outlives the clock moved ahead).
	r.op.SetTokenLifetime(time.Hour)
	resp := r.login(t, b, alice, "/?tab=prd")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.RequestURI() != "/?tab=prd" {
		t.Fatalf("login after expiry ended at %s with %d", resp.Request.URL, resp.StatusCode)
	}
}

func TestSessionEndsAfterSessionTTLEvenWithALongerIDToken(t *testing.T) {
	r := newRig(t, rigOptions{sessionTTL: 30 * time.Minute})
	r.op.SetTokenLifetime(2 * time.Hour)
	b := r.browser(t)
	r.loggedIn(t, b, alice)

	r.clock.Advance(29 * time.Minute)
	if _, code := r.me(t, b); code != http.StatusOK {
		t.Fatalf("GET / before sessionTTL: %d", code)
	}
	r.clock.Advance(time.Minute)
	r.expectLoginRequired(t, b)
}

func TestUnknownSessionCookieIsSentToLogin(t *testing.T) {
	r := newRig(t, rigOptions{})
	b := r.browser(t)
	r.loggedIn(t, b, alice)
	// A made-up id in the cookie is no session.
	forged := r.browser(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+"/", nil)
	req.AddCookie(&http.Cookie{Name: "slipway-session", Value: strings.Repeat("A", 43)})
	req.Header.Set("Accept", "application/json")
	resp, err := noFollow(forged).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("made-up session id: %d, want 401", resp.StatusCode)
	}
	// So is the bucket's key (the hash) used as a cookie.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+"/", nil)
	req.AddCookie(&http.Cookie{Name: "slipway-session", Value: r.sessions(t)[0]})
	req.Header.Set("Accept", "application/json")
	if resp, err = noFollow(forged).Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a session's bucket key as cookie: %d, want 401", resp.StatusCode)
	}
}

func TestLogoutEndsTheSessionHereAndAtTheProvider(t *testing.T) {
	r := newRig(t, rigOptions{})
	b := r.browser(t)
	m := r.loggedIn(t, b, alice)
	if !r.op.SignedIn(alice.Username) {
		t.Fatal("alice is not signed in at the provider after logging in")
	}

	// GET shows a form and changes nothing.
	form := r.get(t, b, "/auth/logout", map[string]string{"Accept": "text/html"})
	text := body(t, form)
	form.Body.Close()
	if form.StatusCode != http.StatusOK || !strings.Contains(text, `method="post" action="/auth/logout"`) || !strings.Contains(text, `value="`+m.CSRF+`"`) {
		t.Fatalf("GET /auth/logout: %d %s", form.StatusCode, text)
	}
	if _, code := r.me(t, b); code != http.StatusOK {
		t.Fatalf("GET /auth/logout ended the session: %d", code)
	}
	// A logout without the token (another site's form) is refused.
	if resp := r.post(t, b, "/auth/logout", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: %d", resp.StatusCode)
	}
	if _, code := r.me(t, b); code != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", code)
	}

	resp := r.post(t, b, "/auth/logout", m.CSRF, nil)
	to := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(to, r.op.Issuer+"/") ||
		!strings.Contains(to, "id_token_hint=") || !strings.Contains(to, "post_logout_redirect_uri="+url.QueryEscape(r.url+"/")) {
		t.Fatalf("logout: %d to %q, want 303 to the provider's end_session with id_token_hint and the console as post_logout_redirect_uri", resp.StatusCode, to)
	}
	if r.cookie(b, "slipway-session") != "" {
		t.Fatal("logout left the session cookie")
	}
	if keys := r.sessions(t); len(keys) != 0 {
		t.Fatalf("logout left the session record: %v", keys)
	}
	// The provider ends its own session and sends the browser back.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, to, nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	back.Body.Close()
	if back.Request.URL.String() != r.url+"/" {
		t.Fatalf("after the provider's logout the browser is at %s, want the console", back.Request.URL)
	}
	if r.op.SignedIn(alice.Username) {
		t.Fatal("alice is still signed in at the provider")
	}
	r.expectLoginRequired(t, b)
}

func TestSessionBucketForgetsSessionsAfterSessionTTL(t *testing.T) {
	// Nobody logs out and nobody comes back: the bucket's TTL is what
	// removes the session (the clock of the console does not move here).
	r := newRig(t, rigOptions{sessionTTL: 3 * time.Second})
	b := r.browser(t)
	if resp := r.login(t, b, alice, "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	id := r.cookie(b, "slipway-session")
	if !r.hasSession(t, id) {
		t.Fatal("no session after a login")
	}
	testkit.WaitFor(t, "session removed by the bucket's TTL", func() bool { return !r.hasSession(t, id) })
}

// A browser checks where a form's answer redirects against the page's
// form-action: the logout's redirect to the provider's end_session must be
// allowed there, or the browser stays on the page, logged out here but not
// at the provider.
func TestPagesWithTheLogoutFormLetItsRedirectToTheProvidersLogoutThrough(t *testing.T) {
	r := newRig(t, rigOptions{})
	b := r.browser(t)
	r.loggedIn(t, b, alice)
	iss, err := url.Parse(r.op.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	want := "form-action 'self' " + iss.Scheme + "://" + iss.Host
	if got := r.auth.FormAction(); "form-action "+got != want {
		t.Errorf("the pages' form-action is %q, want %q", got, want)
	}
	resp := r.get(t, b, "/auth/logout", map[string]string{"Accept": "text/html"})
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusOK || !strings.Contains(csp, want+";") {
		t.Errorf("the logout form's page: %d with Content-Security-Policy %q, want %s", resp.StatusCode, csp, want)
	}
}
