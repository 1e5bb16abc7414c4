package testkit

import (
	"context"
	"crypto/rand"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Lifetimes of the OpenID provider's tokens and sessions unless set.
const (
	DefaultOIDCTokenLifetime   = time.Hour
	DefaultOIDCSessionLifetime = 8 * time.Hour
)

// Paths of the provider's own pages (the protocol's endpoints are op's:
// /authorize, /oauth/token, /userinfo, /keys, /end_session, ...).
const (
	oidcLoginPath     = "/login"
	oidcLoggedOutPath = "/logged-out"
	oidcEndSession    = "/end_session"
	// oidcSessionCookie holds the browser's session at the provider.
	oidcSessionCookie = "testkit_op_session"
)

// OIDCUser is a user of the OpenID provider.
type OIDCUser struct {
	// Subject is the sub claim; "sub-<username>" when empty.
	Subject  string
	Username string
	Password string
	Email    string
	Name     string
	// Groups is the groups claim (a JSON array).
	Groups []string
}

// OIDCProvider is an OpenID provider served in process on 127.0.0.1 over
// plain HTTP, built with zitadel/oidc's op package: discovery, JWKS, the
// authorization code flow, userinfo, revocation, introspection and
// RP-initiated logout (end_session_endpoint), with its own HTML login form
// (fields username and password, button id "login").
//
// It is as strict as a production provider where a relying party could
// otherwise get things wrong unnoticed: PKCE with S256 is required (an
// authorization request without it comes back invalid_request, a code
// exchange without the right verifier is invalid_grant); redirect URIs
// match exactly; the token endpoint checks the client secret (basic or
// post); a code works once. Claims follow the scopes: profile gives name
// and preferred_username, email gives email, groups gives groups; sub
// always. The ID token carries the nonce of the authorization request.
//
// A successful login leaves a session cookie at the provider, so that a
// second authorization request from the same browser signs in without the
// password (single sign-on) until the session expires or the user signs
// out through end_session. A post-logout redirect URI may be any URI on
// the origin of one of the client's redirect URIs.
//
// The server stops at t.Cleanup.
type OIDCProvider struct {
	// Issuer is http://127.0.0.1:<port>, the discovery document's base.
	Issuer string

	storage  *oidcStorage
	provider *op.Provider
	callback func(context.Context, string) string
}

var oidcLoginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="` + oidcLoginPath + `">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" value="{{.Username}}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button id="login" type="submit">Sign in</button>
</form>
</body></html>
`))

// NewOIDCProvider starts an OpenID provider with these users.
func NewOIDCProvider(t testing.TB, users ...OIDCUser) *OIDCProvider {
	t.Helper()
	storage, err := newOIDCStorage(users)
	if err != nil {
		t.Fatalf("testkit: OIDC provider: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: OIDC provider: listen: %v", err)
	}
	p := &OIDCProvider{Issuer: "http://" + ln.Addr().String(), storage: storage}

	var cryptoKey [32]byte
	_, _ = rand.Read(cryptoKey[:])
	cfg := &op.Config{
		CryptoKey:                cryptoKey,
		DefaultLogoutRedirectURI: oidcLoggedOutPath,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes: []string{
			oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidcScopeGroups,
		},
		SupportedClaims: []string{
			"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "azp", "amr",
			"name", "preferred_username", "email", "email_verified", "groups",
		},
	}
	// Plain HTTP on loopback: op refuses a non-https issuer unless told.
	p.provider, err = op.NewProvider(cfg, storage, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		_ = ln.Close()
		t.Fatalf("testkit: OIDC provider: %v", err)
	}
	p.callback = op.AuthCallbackURL(p.provider)
	interceptor := op.NewIssuerInterceptor(p.provider.IssuerFromRequest)

	mux := http.NewServeMux()
	mux.Handle(oidcLoginPath, interceptor.HandlerFunc(p.login))
	mux.HandleFunc(oidcLoggedOutPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head><body><h1 id="signed-out">Signed out</h1></body></html>`)
	})
	mux.Handle(oidcEndSession, p.endBrowserSession(p.provider))
	mux.Handle("/", p.provider)

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return p
}

// RegisterClient registers a confidential client whose only redirect URI
// is redirectURI and returns its credentials.
func (p *OIDCProvider) RegisterClient(t testing.TB, redirectURI string) (clientID, clientSecret string) {
	t.Helper()
	u, err := url.Parse(redirectURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("testkit: OIDC provider: redirect URI %q is not an absolute http(s) URL", redirectURI)
	}
	c := &oidcClient{
		id:           "client-" + strings.ToLower(rand.Text()[:10]),
		secret:       rand.Text(),
		redirectURIs: []string{redirectURI},
		origins:      []string{u.Scheme + "://" + u.Host},
		loginURL: func(id string) string {
			return oidcLoginPath + "?authRequestID=" + url.QueryEscape(id)
		},
	}
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.clients[c.id] = c
	return c.id, c.secret
}

// SetTokenLifetime sets the lifetime of the ID and access tokens issued
// from now on (logins already done keep theirs).
func (p *OIDCProvider) SetTokenLifetime(d time.Duration) {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.tokenTTL = d
}

// SetSessionLifetime sets how long a login at the provider lets further
// authorization requests through without the password, for logins from
// now on.
func (p *OIDCProvider) SetSessionLifetime(d time.Duration) {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.sessTTL = d
}

// SignedIn tells whether the user has a live session at the provider (a
// login that neither expired nor was ended by a logout).
func (p *OIDCProvider) SignedIn(username string) bool {
	s := p.storage
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[username]
	if !ok {
		return false
	}
	now := time.Now()
	for _, sess := range s.sessions {
		if sess.subject == u.Subject && now.Before(sess.expires) {
			return true
		}
	}
	return false
}

// login serves the login form (GET) and checks it (POST). With a live
// session cookie and no prompt=login or exceeded max_age, a GET signs the
// request in at once.
func (p *OIDCProvider) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("authRequestID")
		if sub, authTime, ok := p.liveSession(r, id); ok {
			p.finishLogin(w, r, id, sub, authTime, false)
			return
		}
		renderOIDCLogin(w, http.StatusOK, id, "", "")
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "cannot parse the form: "+err.Error(), http.StatusBadRequest)
			return
		}
		id, username := r.PostFormValue("id"), r.PostFormValue("username")
		sub, err := p.storage.checkPassword(username, r.PostFormValue("password"))
		if err != nil {
			renderOIDCLogin(w, http.StatusUnauthorized, id, username, err.Error())
			return
		}
		p.finishLogin(w, r, id, sub, time.Now(), true)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func renderOIDCLogin(w http.ResponseWriter, status int, id, username, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = oidcLoginPage.Execute(w, struct{ ID, Username, Error string }{id, username, msg})
}

// finishLogin marks the authorization request signed in and sends the
// browser on to op's callback, which redirects to the client with the
// code. A fresh password login starts a new session at the provider.
func (p *OIDCProvider) finishLogin(w http.ResponseWriter, r *http.Request, id, sub string, authTime time.Time, fresh bool) {
	if err := p.storage.completeLogin(id, sub, authTime); err != nil {
		renderOIDCLogin(w, http.StatusBadRequest, id, "", err.Error())
		return
	}
	if fresh {
		s := p.storage
		sid := randomID()
		s.mu.Lock()
		expires := authTime.Add(s.sessTTL)
		s.sessions[sid] = &oidcSession{subject: sub, authTime: authTime, expires: expires}
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{
			Name: oidcSessionCookie, Value: sid, Path: "/", Expires: expires,
			HttpOnly: true, SameSite: http.SameSiteLaxMode,
		})
	}
	http.Redirect(w, r, p.callback(r.Context(), id), http.StatusFound)
}

// liveSession returns the subject of the browser's session at the
// provider when it may sign the authorization request in without a
// password.
func (p *OIDCProvider) liveSession(r *http.Request, id string) (string, time.Time, bool) {
	c, err := r.Cookie(oidcSessionCookie)
	if err != nil {
		return "", time.Time{}, false
	}
	s := p.storage
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[c.Value]
	req, known := s.requests[id]
	now := time.Now()
	if !ok || !known || !now.Before(sess.expires) || slices.Contains(req.prompt, oidc.PromptLogin) {
		return "", time.Time{}, false
	}
	if req.maxAge != nil && now.Sub(sess.authTime) > time.Duration(*req.maxAge)*time.Second {
		return "", time.Time{}, false
	}
	return sess.subject, sess.authTime, true
}

// endBrowserSession ends the session of the browser that calls
// end_session (its cookie), whether or not the client sent an
// id_token_hint, once op has accepted the request: op answers a valid
// logout with a redirect, a refused one (say, a foreign
// post_logout_redirect_uri) with an error, which ends nothing.
func (p *OIDCProvider) endBrowserSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(oidcSessionCookie)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&logoutWriter{ResponseWriter: w, end: func() {
			p.storage.mu.Lock()
			delete(p.storage.sessions, c.Value)
			p.storage.mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: oidcSessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
		}}, r)
	})
}

// logoutWriter calls end before a redirect's header is written.
type logoutWriter struct {
	http.ResponseWriter
	end func()
}

func (lw *logoutWriter) WriteHeader(status int) {
	if status == http.StatusFound || status == http.StatusSeeOther {
		lw.end()
	}
	lw.ResponseWriter.WriteHeader(status)
}

// Login drives a whole sign-in without a browser: GET startURL (e.g. a
// relying party's /auth/login) following redirects with client (which
// needs a cookie jar, for the relying party's state and the provider's
// session), then, if the provider shows its login form, submits username
// and password on it. It returns the final response: after the redirect
// back to the relying party's callback and whatever that redirects to, or
// the login form again (401, with an error) when the credentials are
// wrong. The caller closes the body.
func (p *OIDCProvider) Login(t testing.TB, client *http.Client, startURL, username, password string) *http.Response {
	t.Helper()
	if client.Jar == nil {
		t.Fatalf("testkit: OIDC login: the HTTP client has no cookie jar; a login needs one (net/http/cookiejar)")
	}
	resp, err := client.Get(startURL)
	if err != nil {
		t.Fatalf("testkit: OIDC login: GET %s: %v", startURL, err)
	}
	if !p.isLoginForm(resp) {
		return resp // signed in by the provider's session, or refused before the form
	}
	id := resp.Request.URL.Query().Get("authRequestID")
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	resp, err = client.PostForm(p.Issuer+oidcLoginPath, url.Values{
		"id": {id}, "username": {username}, "password": {password},
	})
	if err != nil {
		t.Fatalf("testkit: OIDC login: submit the login form: %v", err)
	}
	return resp
}

// isLoginForm tells whether resp is the provider's login form.
func (p *OIDCProvider) isLoginForm(resp *http.Response) bool {
	u := resp.Request.URL
	return resp.StatusCode == http.StatusOK && u.Scheme+"://"+u.Host == p.Issuer && u.Path == oidcLoginPath
}
