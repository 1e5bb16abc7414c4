package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// DefaultSessionTTL bounds a login when console.sessionTTL is not set.
const DefaultSessionTTL = 8 * time.Hour

const (
	// loginTTL bounds a login under way, from /auth/login to the callback.
	loginTTL = 10 * time.Minute
	// idpTimeout bounds each request to the identity provider (discovery,
	// code exchange, keys).
	idpTimeout = 10 * time.Second
	// The backoff between discovery attempts of a provider that does not
	// answer (yet).
	discoverFirstRetry = time.Second
	discoverMaxRetry   = 30 * time.Second
)

// The cookies' names without the __Host- prefix they get over HTTPS.
const (
	sessionCookie = "slipway-session"
	loginCookie   = "slipway-login"
)

// session is a login, as kept in SessionBucket.
type session struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
	// Expires is the earlier of the login plus console.sessionTTL and the
	// ID token's expiry.
	Expires time.Time `json:"expires"`
	// CSRF is the session's synchronizer token.
	CSRF string `json:"csrf"`
	// IDToken is the raw ID token: the hint the provider's logout asks
	// for.
	IDToken string    `json:"idToken,omitempty"`
	Created time.Time `json:"created"`
}

func (s session) user() User {
	return User{Identity: access.Identity{Name: s.User, Groups: s.Groups, Via: events.ViaConsole}, CSRF: s.CSRF, Expires: s.Expires}
}

// pending is a login under way, as kept in LoginBucket under the id in the
// browser's login cookie: the callback must come back to the browser that
// started the login, with its state, and the code is exchanged with its
// PKCE verifier and the ID token must carry its nonce.
type pending struct {
	State    string    `json:"state"`
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"`
	Next     string    `json:"next"`
	Created  time.Time `json:"created"`
}

// relyingParty is the console as an OpenID Connect client.
type relyingParty struct {
	cfg    config.OIDC
	scopes []string
	// secure: the console is reached over HTTPS (its redirectUrl), so its
	// cookies are Secure and __Host- prefixed.
	secure bool
	// root is the console's address as the browser reaches it, where the
	// provider's logout sends the browser back.
	root     string
	ttl      time.Duration
	client   *http.Client
	sessions *store[session]
	logins   *store[pending]
	now      func() time.Time
	log      *slog.Logger

	mu sync.RWMutex
	// idp is nil until the provider has been discovered; lastErr is why.
	idp     *discovered
	lastErr error
}

// discovered is what the provider's discovery document gives.
type discovered struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	// endSession is the provider's RP-initiated logout, when it has one.
	endSession string
}

func newRelyingParty(ctx context.Context, opts Options, cop *http.CrossOriginProtection) (*relyingParty, error) {
	cfg := opts.Config
	o := *cfg.Console.Auth.OIDC
	ru, err := url.Parse(o.RedirectURL)
	if err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
		return nil, fmt.Errorf("console.auth.oidc.redirectUrl: %q is not an http(s) URL", o.RedirectURL)
	}
	origin := ru.Scheme + "://" + ru.Host
	// Behind a proxy that rewrites Host, the browser's Origin is still the
	// console's public one.
	if err := cop.AddTrustedOrigin(origin); err != nil {
		return nil, fmt.Errorf("console.auth.oidc.redirectUrl: %w", err)
	}
	rp := &relyingParty{
		cfg:    o,
		scopes: o.Scopes,
		// A session cookie sent over plain HTTP can be read on the way
		// and replayed: only a console reached over HTTPS gets Secure
		// cookies, and plain http is for a loopback console in
		// development and tests.
		secure: ru.Scheme == "https",
		root:   origin + "/",
		ttl:    cfg.Console.SessionTTL,
		client: &http.Client{Timeout: idpTimeout},
		now:    opts.Now,
		log:    opts.Log,
	}
	if opts.Client != nil {
		rp.client = opts.Client
	}
	if len(rp.scopes) == 0 {
		rp.scopes = []string{"profile", "email", "groups"}
	}
	if rp.ttl <= 0 {
		rp.ttl = DefaultSessionTTL
	}
	replicas := cfg.NATS.Stream.Replicas
	if rp.sessions, err = openStore[session](ctx, opts.JS, SessionBucket, "Slipway console: logged-in sessions (by hashed id)", replicas, rp.ttl); err != nil {
		return nil, err
	}
	if rp.logins, err = openStore[pending](ctx, opts.JS, LoginBucket, "Slipway console: logins under way (state, nonce, PKCE verifier)", replicas, loginTTL); err != nil {
		return nil, err
	}
	if opts.Health != nil {
		opts.Health.Add("oidc", rp.ready)
	}
	// A console may start before its identity provider (a whole stack
	// coming up at once): it serves the sessions it has, says it is not
	// ready, and keeps trying, rather than failing its start.
	if err := rp.discover(ctx); err != nil {
		rp.log.Warn("console: identity provider not reachable yet; retrying", "issuer", o.Issuer, "err", err)
		go rp.keepDiscovering(ctx)
	}
	return rp, nil
}

// discover reads the provider's discovery document.
func (rp *relyingParty) discover(ctx context.Context) error {
	ctx = oidc.ClientContext(ctx, rp.client)
	p, err := oidc.NewProvider(ctx, rp.cfg.Issuer)
	if err != nil {
		rp.mu.Lock()
		rp.lastErr = err
		rp.mu.Unlock()
		return err
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return err
	}
	d := &discovered{
		oauth: oauth2.Config{
			ClientID:     rp.cfg.ClientID,
			ClientSecret: rp.cfg.ClientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  rp.cfg.RedirectURL,
			Scopes:       append([]string{oidc.ScopeOpenID}, rp.scopes...),
		},
		// Checks the signature, the issuer, the audience (this client)
		// and the expiry; the nonce is checked by the callback.
		verifier:   p.Verifier(&oidc.Config{ClientID: rp.cfg.ClientID, Now: rp.now}),
		endSession: meta.EndSession,
	}
	rp.mu.Lock()
	rp.idp, rp.lastErr = d, nil
	rp.mu.Unlock()
	rp.log.Info("console: identity provider discovered", "issuer", rp.cfg.Issuer, "logout", d.endSession != "")
	return nil
}

func (rp *relyingParty) keepDiscovering(ctx context.Context) {
	delay := discoverFirstRetry
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := rp.discover(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		delay = min(2*delay, discoverMaxRetry)
		rp.log.Warn("console: identity provider not reachable yet; retrying", "issuer", rp.cfg.Issuer, "err", err, "retry_in", delay)
	}
}

func (rp *relyingParty) provider() *discovered {
	rp.mu.RLock()
	defer rp.mu.RUnlock()
	return rp.idp
}

// formAction is 'self' and the origin of the provider's logout, once the
// provider is discovered and has one (see Authenticator.FormAction).
func (rp *relyingParty) formAction() string {
	if idp := rp.provider(); idp != nil && idp.endSession != "" {
		if u, err := url.Parse(idp.endSession); err == nil && u.Host != "" {
			return "'self' " + u.Scheme + "://" + u.Host
		}
	}
	return "'self'"
}

// ready is the "oidc" readiness check: nobody can log in before the
// provider has been discovered.
func (rp *relyingParty) ready(context.Context) error {
	rp.mu.RLock()
	defer rp.mu.RUnlock()
	if rp.idp != nil {
		return nil
	}
	if rp.lastErr != nil {
		return fmt.Errorf("identity provider %s not discovered yet: %w", rp.cfg.Issuer, rp.lastErr)
	}
	return fmt.Errorf("identity provider %s not discovered yet", rp.cfg.Issuer)
}

func (rp *relyingParty) mount(e *echo.Echo) {
	e.GET("/auth/login", rp.login)
	e.GET("/auth/callback", rp.callback)
	e.GET("/auth/logout", rp.logoutForm)
	e.POST("/auth/logout", rp.logout)
	e.GET("/auth/logged-out", func(c echo.Context) error {
		return renderPage(c, http.StatusOK, page{Title: "Logged out", Message: "You are logged out of the Slipway console.", Link: "/auth/login", LinkText: "Log in"})
	})
}

// login starts a login: a fresh state, nonce and PKCE verifier, kept
// server-side under a random id that only this browser holds, then off to
// the provider.
func (rp *relyingParty) login(c echo.Context) error {
	idp := rp.provider()
	if idp == nil {
		return unavailable(c, "The console cannot reach its identity provider yet; try again in a moment.")
	}
	p := pending{
		State:    randomToken(),
		Nonce:    randomToken(),
		Verifier: oauth2.GenerateVerifier(),
		Next:     localPath(c.QueryParam("next")),
		Created:  rp.now(),
	}
	id := randomToken()
	if err := rp.logins.put(c.Request().Context(), id, p); err != nil {
		rp.log.Error("console: cannot store a login under way", "err", err)
		return unavailable(c, "The console cannot store logins right now; try again in a moment.")
	}
	rp.setCookie(c, loginCookie, id, loginTTL)
	return c.Redirect(http.StatusFound, idp.oauth.AuthCodeURL(p.State, oauth2.S256ChallengeOption(p.Verifier), oidc.Nonce(p.Nonce)))
}

// callback finishes a login: the state must be this browser's login's
// (single use), the code is exchanged with its verifier, and the ID token
// must be valid for this client and carry the login's nonce.
func (rp *relyingParty) callback(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	id := rp.cookie(c, loginCookie)
	rp.clearCookie(c, loginCookie)
	p, found, err := rp.logins.take(ctx, id)
	if err != nil {
		rp.log.Error("console: cannot read a login under way", "err", err)
		return unavailable(c, "The console cannot read logins right now; try again in a moment.")
	}
	if e := q.Get("error"); e != "" {
		rp.log.Warn("console: the identity provider did not log the user in", "error", e, "description", q.Get("error_description"))
		return loginFailed(c, http.StatusForbidden, "The identity provider did not log you in ("+clip(e)+").", clip(q.Get("error_description")))
	}
	if !found {
		rp.log.Warn("console: login callback without a login under way in this browser", "remote", c.RealIP())
		return loginFailed(c, http.StatusBadRequest, "This login is unknown or has expired: a login must finish within 10 minutes, in the browser that started it.", "")
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.State)) != 1 {
		rp.log.Warn("console: login callback with a state that is not this browser's login's", "remote", c.RealIP())
		return loginFailed(c, http.StatusBadRequest, "This login's state does not match the one this browser started.", "")
	}
	idp := rp.provider()
	if idp == nil {
		return unavailable(c, "The console cannot reach its identity provider yet; try again in a moment.")
	}
	tok, err := idp.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, rp.client), q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		rp.log.Warn("console: the identity provider did not exchange the login's code", "err", err)
		return loginFailed(c, http.StatusBadGateway, "The identity provider did not accept this login's code.", "")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		rp.log.Warn("console: the identity provider's token response has no ID token")
		return loginFailed(c, http.StatusBadGateway, "The identity provider sent no ID token.", "")
	}
	idt, err := idp.verifier.Verify(oidc.ClientContext(ctx, rp.client), raw)
	if err != nil {
		rp.log.Warn("console: ID token refused", "err", err)
		return loginFailed(c, http.StatusUnauthorized, "The identity provider's ID token could not be verified.", "")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.Nonce)) != 1 {
		rp.log.Warn("console: ID token refused: its nonce is not the login's")
		return loginFailed(c, http.StatusUnauthorized, "The identity provider's ID token was not issued for this login.", "")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return loginFailed(c, http.StatusBadGateway, "The identity provider's ID token could not be read.", "")
	}
	name, err := userOf(claims, rp.cfg.UserClaim)
	if err != nil {
		rp.log.Warn("console: ID token refused", "err", err)
		return loginFailed(c, http.StatusForbidden, "The identity provider's ID token does not say who you are: "+err.Error()+".", "")
	}
	now := rp.now()
	s := session{
		User:    name,
		Groups:  rp.groupsOf(claims, name),
		Expires: earliest(now.Add(rp.ttl), idt.Expiry),
		CSRF:    randomToken(),
		IDToken: raw,
		Created: now,
	}
	if !s.Expires.After(now) {
		return loginFailed(c, http.StatusUnauthorized, "The identity provider's ID token has already expired.", "")
	}
	sid := randomToken()
	if err := rp.sessions.put(ctx, sid, s); err != nil {
		rp.log.Error("console: cannot store a session", "err", err)
		return unavailable(c, "The console cannot store sessions right now; try again in a moment.")
	}
	rp.setCookie(c, sessionCookie, sid, s.Expires.Sub(now))
	rp.log.Info("console: logged in", "user", name, "groups", len(s.Groups), "until", s.Expires)
	return c.Redirect(http.StatusFound, p.Next)
}

// current is the request's live session and its id; ok is false without
// one (no cookie, an unknown id, a logged-out or expired session).
func (rp *relyingParty) current(c echo.Context) (s session, id string, ok bool, err error) {
	id = rp.cookie(c, sessionCookie)
	s, _, found, err := rp.sessions.get(c.Request().Context(), id)
	if err != nil || !found {
		return s, id, false, err
	}
	if !rp.now().Before(s.Expires) {
		// The bucket's TTL would drop it later; nobody uses it again.
		if err := rp.sessions.delete(c.Request().Context(), id); err != nil {
			rp.log.Warn("console: cannot delete an expired session", "err", err)
		}
		rp.clearCookie(c, sessionCookie)
		return s, id, false, nil
	}
	return s, id, true, nil
}

// logoutForm asks to confirm: a GET changes nothing.
func (rp *relyingParty) logoutForm(c echo.Context) error {
	s, _, ok, err := rp.current(c)
	if err != nil {
		return unavailable(c, "The console cannot read its sessions right now; try again in a moment.")
	}
	if !ok {
		return renderPage(c, http.StatusOK, page{Title: "Not logged in", Message: "You are not logged in to the Slipway console.", Link: "/auth/login", LinkText: "Log in"})
	}
	return renderPage(c, http.StatusOK, page{Title: "Log out", Message: "Log out of the Slipway console as " + s.User + "?", CSRF: s.CSRF,
		formAction: rp.formAction()})
}

// logout ends the session (CSRF-checked: a page elsewhere cannot log the
// user out), then logs out of the provider too when it offers that.
func (rp *relyingParty) logout(c echo.Context) error {
	s, id, ok, err := rp.current(c)
	if err != nil {
		return unavailable(c, "The console cannot read its sessions right now; try again in a moment.")
	}
	if !ok {
		rp.clearCookie(c, sessionCookie)
		return c.Redirect(http.StatusSeeOther, "/auth/logged-out")
	}
	if ok, err := checkToken(c, rp.log, s.user()); !ok {
		return err
	}
	if err := rp.sessions.delete(c.Request().Context(), id); err != nil {
		rp.log.Error("console: cannot delete a session at logout", "err", err)
		return unavailable(c, "The console cannot end sessions right now; try again in a moment.")
	}
	rp.clearCookie(c, sessionCookie)
	rp.log.Info("console: logged out", "user", s.User)
	if idp := rp.provider(); idp != nil && idp.endSession != "" {
		if u, err := url.Parse(idp.endSession); err == nil {
			v := u.Query()
			v.Set("id_token_hint", s.IDToken)
			v.Set("client_id", rp.cfg.ClientID)
			v.Set("post_logout_redirect_uri", rp.root)
			u.RawQuery = v.Encode()
			return c.Redirect(http.StatusSeeOther, u.String())
		}
	}
	return c.Redirect(http.StatusSeeOther, "/auth/logged-out")
}

func (rp *relyingParty) cookieName(base string) string {
	if rp.secure {
		// __Host-: the browser takes it only from this host, over HTTPS,
		// for Path=/ — a sibling subdomain cannot plant one.
		return "__Host-" + base
	}
	return base
}

func (rp *relyingParty) cookie(c echo.Context, base string) string {
	ck, err := c.Cookie(rp.cookieName(base))
	if err != nil {
		return ""
	}
	return ck.Value
}

// setCookie sets a cookie that scripts cannot read and that other sites'
// requests do not carry, except a top-level navigation (SameSite=Lax: the
// provider's redirect back to the callback is one).
func (rp *relyingParty) setCookie(c echo.Context, base, value string, ttl time.Duration) {
	c.SetCookie(&http.Cookie{
		Name: rp.cookieName(base), Value: value, Path: "/",
		MaxAge:   max(int(ttl/time.Second), 1),
		HttpOnly: true, Secure: rp.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (rp *relyingParty) clearCookie(c echo.Context, base string) {
	if _, err := c.Cookie(rp.cookieName(base)); errors.Is(err, http.ErrNoCookie) {
		return
	}
	c.SetCookie(&http.Cookie{
		Name: rp.cookieName(base), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: rp.secure, SameSite: http.SameSiteLaxMode,
	})
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// clip bounds text from the provider shown on a page.
func clip(s string) string {
	const maxLen = 300
	if r := []rune(s); len(r) > maxLen {
		return string(r[:maxLen]) + "…"
	}
	return s
}
