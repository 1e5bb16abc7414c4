package testkit_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

var alice = testkit.OIDCUser{
	Subject: "u-alice", Username: "alice", Password: "alice-pw",
	Email: "alice@example.com", Name: "Alice Example", Groups: []string{"dev", "release-managers"},
}

func newJarClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// stopAtRedirectURI makes client stop at the redirect to the relying
// party's callback, so that the test holds the code (or the error) the
// provider sent.
func stopAtRedirectURI(client *http.Client, rp *relyingParty) *http.Client {
	client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), rp.URL+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return client
}

// redirectQuery returns the query of the redirect resp makes to the
// relying party, failing the test when it makes none.
func redirectQuery(t *testing.T, resp *http.Response, rp *relyingParty) url.Values {
	t.Helper()
	defer resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), rp.RedirectURI) {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("want a redirect to %s; got %s (Location %v): %s", rp.RedirectURI, resp.Status, loc, b)
	}
	return loc.Query()
}

// signInForCode signs alice in with a code challenge for verifier and
// returns the code, checking the state comes back.
func signInForCode(t *testing.T, p *testkit.OIDCProvider, rp *relyingParty, verifier string) string {
	t.Helper()
	client := stopAtRedirectURI(newJarClient(t), rp)
	start := rp.OAuth.AuthCodeURL("state-42", oidc.Nonce("nonce-42"), oauth2.S256ChallengeOption(verifier))
	q := redirectQuery(t, p.Login(t, client, start, alice.Username, alice.Password), rp)
	if q.Get("state") != "state-42" {
		t.Fatalf("state %q came back, sent state-42", q.Get("state"))
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in the redirect: %v", q)
	}
	return q.Get("code")
}

func wantOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want a %s error from the token endpoint, got %v", code, err)
	}
	if re.ErrorCode != code {
		t.Fatalf("token endpoint answered %q (%s), want %q", re.ErrorCode, re.ErrorDescription, code)
	}
}

func TestOIDCLoginGivesAVerifiableIDTokenWithTheUsersClaimsAndGroups(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)

	resp := p.Login(t, newJarClient(t), rp.URL+"/login", alice.Username, alice.Password)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != rp.URL+"/" {
		t.Fatalf("login ended at %s with %s: %s", resp.Request.URL, resp.Status, body)
	}
	if !strings.Contains(string(body), "Alice Example") {
		t.Errorf("relying party's page does not greet the user: %s", body)
	}
	logins := rp.Logins()
	if len(logins) != 1 {
		t.Fatalf("relying party completed %d logins, want 1", len(logins))
	}
	c := logins[0].Claims
	if c.Subject != "u-alice" || c.Email != "alice@example.com" || c.PreferredUsername != "alice" || c.Name != "Alice Example" {
		t.Errorf("claims %+v do not describe alice", c)
	}
	if !slices.Equal(c.Groups, []string{"dev", "release-managers"}) {
		t.Errorf("groups claim %q, want [dev release-managers]", c.Groups)
	}
	if c.Nonce == "" || c.Nonce != logins[0].Nonce {
		t.Errorf("ID token nonce %q, the relying party sent %q", c.Nonce, logins[0].Nonce)
	}
	if !p.SignedIn("alice") {
		t.Error("the provider holds no session for alice after her login")
	}
}

func TestOIDCDiscoveryAnnouncesS256AndEndSession(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	var doc struct {
		Issuer        string   `json:"issuer"`
		EndSession    string   `json:"end_session_endpoint"`
		JWKS          string   `json:"jwks_uri"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		ScopesSupport []string `json:"scopes_supported"`
	}
	if err := rp.Provider.Claims(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != p.Issuer || !strings.HasPrefix(p.Issuer, "http://127.0.0.1:") {
		t.Errorf("issuer %q, provider says %q", doc.Issuer, p.Issuer)
	}
	if doc.EndSession != p.Issuer+"/end_session" || doc.JWKS != p.Issuer+"/keys" {
		t.Errorf("end_session_endpoint %q, jwks_uri %q", doc.EndSession, doc.JWKS)
	}
	if !slices.Equal(doc.PKCE, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported %q, want [S256]", doc.PKCE)
	}
	if !slices.Contains(doc.ScopesSupport, "groups") {
		t.Errorf("scopes_supported %q lacks groups", doc.ScopesSupport)
	}
}

func TestOIDCRefusesACodeExchangeWithoutTheRightVerifier(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	verifier := oauth2.GenerateVerifier()
	code := signInForCode(t, p, rp, verifier)

	_, err := rp.OAuth.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantOAuthError(t, err, "invalid_grant")
	_, err = rp.OAuth.Exchange(t.Context(), code)
	wantOAuthError(t, err, "invalid_request")

	// The refusals were the verifier's: the right one gets the tokens,
	// once.
	tok, err := rp.OAuth.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange with the right verifier: %v", err)
	}
	if raw, _ := tok.Extra("id_token").(string); raw == "" {
		t.Fatal("no id_token in the token response")
	}
	_, err = rp.OAuth.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err == nil {
		t.Fatal("the code was exchanged twice")
	}
}

func TestOIDCRefusesAnAuthorizationRequestWithoutS256PKCE(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"no challenge": nil,
		"plain":        {oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
	} {
		t.Run(name, func(t *testing.T) {
			client := stopAtRedirectURI(newJarClient(t), rp)
			resp, err := client.Get(rp.OAuth.AuthCodeURL("state-7", opts...))
			if err != nil {
				t.Fatal(err)
			}
			q := redirectQuery(t, resp, rp)
			if q.Get("error") != "invalid_request" || q.Get("code") != "" || q.Get("state") != "state-7" {
				t.Fatalf("provider answered %v; want error=invalid_request with the state and no code", q)
			}
		})
	}
}

func TestOIDCChecksTheClientSecretAtTheTokenEndpoint(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	verifier := oauth2.GenerateVerifier()
	code := signInForCode(t, p, rp, verifier)

	wrong := rp.OAuth
	wrong.ClientSecret = "not-" + rp.ClientSecret
	_, err := wrong.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_client")

	if _, err := rp.OAuth.Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange with the right secret: %v", err)
	}
}

func TestOIDCRefusesAnUnregisteredRedirectURI(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	for _, uri := range []string{rp.RedirectURI + "/", rp.RedirectURI + "?next=x", rp.URL + "/elsewhere", "http://127.0.0.1:1/callback"} {
		t.Run(uri, func(t *testing.T) {
			conf := rp.OAuth
			conf.RedirectURL = uri
			client := newJarClient(t)
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := client.Get(conf.AuthCodeURL("state-9", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); loc != "" || resp.StatusCode < 400 {
				t.Fatalf("provider answered %s, Location %q; want an error shown at the provider", resp.Status, loc)
			}
			if !strings.Contains(string(body), "redirect_uri") {
				t.Errorf("error page does not name the redirect URI as the problem: %s", body)
			}
		})
	}
}

func TestOIDCRefusesAWrongPassword(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	client := newJarClient(t)
	for _, creds := range [][2]string{{"alice", "bob-pw"}, {"alice", ""}, {"mallory", "alice-pw"}} {
		resp := p.Login(t, client, rp.URL+"/login", creds[0], creds[1])
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Request.URL.String(), p.Issuer+"/login") {
			t.Fatalf("%s/%q: ended at %s with %s; want the login form again", creds[0], creds[1], resp.Request.URL, resp.Status)
		}
		if !strings.Contains(string(body), "wrong username or password") || !strings.Contains(string(body), `id="password"`) {
			t.Errorf("%s: the form again does not say why: %s", creds[0], body)
		}
	}
	if n := len(rp.Logins()); n != 0 || p.SignedIn("alice") {
		t.Fatalf("after wrong passwords: %d logins at the relying party, session at the provider %t", n, p.SignedIn("alice"))
	}
	resp := p.Login(t, client, rp.URL+"/login", "alice", "alice-pw")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(rp.Logins()) != 1 {
		t.Fatalf("the right password then: %s at %s, %d logins", resp.Status, resp.Request.URL, len(rp.Logins()))
	}
}

func TestOIDCTokenLifetimeMakesTheIDTokenExpire(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	lifetime := func() time.Duration {
		t.Helper()
		resp := p.Login(t, newJarClient(t), rp.URL+"/login", alice.Username, alice.Password)
		resp.Body.Close()
		logins := rp.Logins()
		if resp.StatusCode != http.StatusOK || len(logins) == 0 {
			t.Fatalf("login: %s at %s", resp.Status, resp.Request.URL)
		}
		raw := logins[len(logins)-1].RawIDToken
		idt, err := rp.Verifier.Verify(t.Context(), raw)
		if err != nil {
			t.Fatalf("fresh ID token: %v", err)
		}
		// The same token, checked by a verifier whose clock is past the
		// expiry, must be refused as expired.
		late := rp.Provider.Verifier(&oidc.Config{ClientID: rp.ClientID, Now: func() time.Time {
			return idt.Expiry.Add(time.Second)
		}})
		var expired *oidc.TokenExpiredError
		if _, err := late.Verify(t.Context(), raw); !errors.As(err, &expired) {
			t.Fatalf("ID token checked after its expiry: %v; want TokenExpiredError", err)
		}
		return idt.Expiry.Sub(idt.IssuedAt)
	}
	if d := lifetime(); d != testkit.DefaultOIDCTokenLifetime {
		t.Errorf("default ID token lifetime %s, want %s", d, testkit.DefaultOIDCTokenLifetime)
	}
	p.SetTokenLifetime(90 * time.Second)
	if d := lifetime(); d != 90*time.Second {
		t.Errorf("ID token lifetime after SetTokenLifetime(90s): %s", d)
	}
}

func TestOIDCSessionSignsInAgainWithoutPasswordUntilLogout(t *testing.T) {
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)
	client := newJarClient(t)
	resp := p.Login(t, client, rp.URL+"/login", alice.Username, alice.Password)
	resp.Body.Close()

	// Single sign-on: the provider's session lets the second request
	// through without the form (no password given).
	resp = p.Login(t, client, rp.URL+"/login", "", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(rp.Logins()) != 2 {
		t.Fatalf("second login: %s at %s, %d logins; want signed in by the session", resp.Status, resp.Request.URL, len(rp.Logins()))
	}

	var doc struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := rp.Provider.Claims(&doc); err != nil {
		t.Fatal(err)
	}
	logout := func(postLogout string) *http.Response {
		q := url.Values{
			"id_token_hint":            {rp.Logins()[1].RawIDToken},
			"post_logout_redirect_uri": {postLogout},
			"state":                    {"bye"},
		}
		resp, err := client.Get(doc.EndSession + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A post-logout URI on another origin is refused (and ends nothing).
	if resp := logout("http://127.0.0.1:1/"); resp.StatusCode < 400 || !p.SignedIn("alice") {
		t.Fatalf("logout to a foreign URI: %s, still signed in %t; want refused", resp.Status, p.SignedIn("alice"))
	}
	resp = logout(rp.URL + "/")
	if got := resp.Request.URL.String(); got != rp.URL+"/?state=bye" {
		t.Fatalf("logout ended at %s, want %s/?state=bye", got, rp.URL)
	}
	if p.SignedIn("alice") {
		t.Fatal("alice still has a session at the provider after logout")
	}
	resp = p.Login(t, client, rp.URL+"/login", "", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(rp.Logins()) != 2 {
		t.Fatalf("after logout: %s at %s; want the login form", resp.Status, resp.Request.URL)
	}
}
