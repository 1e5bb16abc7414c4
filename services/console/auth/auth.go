// Package auth is how the console knows who is asking: OpenID Connect login
// (authorization code with PKCE), sessions, CSRF protection on every state
// change, and logout; or, with console.auth.none, everyone as one
// anonymous user with every permission.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
)

// Options configure an Authenticator.
type Options struct {
	Config *config.Config
	// JS keeps the sessions (so that every console replica knows them).
	JS  jetstream.JetStream
	Log *slog.Logger
	Now func() time.Time
	// Health, when set, gets the "oidc" readiness check: not ready until
	// the identity provider has been discovered.
	Health *health.Checker
	// Client, when set, is how the console reaches the identity provider
	// (a proxy, a private CA); by default a client whose requests time
	// out after 10 s.
	Client *http.Client
}

// User is who asks, as a view sees them.
type User struct {
	access.Identity
	// CSRF is the token every form and script request of this session
	// must carry (field "csrf" or header X-CSRF-Token).
	CSRF string
	// Expires is when the session ends (zero: never, console.auth.none):
	// a live stream ends then, so that the browser asks again and is sent
	// to the login.
	Expires time.Time
}

// Authenticator logs users in and out and guards the views.
type Authenticator struct {
	log    *slog.Logger
	policy *access.Policy
	// crossOrigin refuses unsafe requests that a browser says come from
	// another site, before any token is looked at.
	crossOrigin *http.CrossOriginProtection
	// rp is the OpenID Connect login; nil with auth.none.
	rp *relyingParty
	// noneCSRF is the CSRF token of the anonymous user (auth.none): one
	// per process.
	noneCSRF string
}

// New builds the Authenticator of opts.Config.Console.Auth. With OIDC it
// opens the session buckets and discovers the identity provider; a
// provider that does not answer yet is tried again in the background until
// ctx ends (the "oidc" readiness check and /auth/login say so meanwhile).
func New(ctx context.Context, opts Options) (*Authenticator, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{log: opts.Log, crossOrigin: http.NewCrossOriginProtection()}
	auth := opts.Config.Console.Auth
	switch {
	case auth.None:
		a.policy = access.Everyone()
		a.noneCSRF = randomToken()
		a.log.Warn("console.auth.none: there is no login; anyone who reaches the console may view and do everything")
	case auth.OIDC != nil:
		rp, err := newRelyingParty(ctx, opts, a.crossOrigin)
		if err != nil {
			return nil, err
		}
		a.rp = rp
		a.policy = access.New(opts.Config)
	default:
		return nil, errors.New("console.auth: the console needs a login: set console.auth.oidc, or console.auth.none: true")
	}
	return a, nil
}

// Policy is who may do what.
func (a *Authenticator) Policy() *access.Policy { return a.policy }

// Mode names the login for the start-up log line: "oidc" or "none".
func (a *Authenticator) Mode() string {
	if a.rp == nil {
		return "none"
	}
	return "oidc"
}

// FormAction is the Content-Security-Policy form-action of a page with the
// logout form: the console itself and, when the provider has a logout of
// its own, that logout's origin. The console answers the logout's POST
// with a redirect there, and browsers check a form's redirects against
// form-action too: with 'self' alone the browser stays on the page and the
// provider's session lives on.
func (a *Authenticator) FormAction() string {
	if a.rp == nil {
		return "'self'"
	}
	return a.rp.formAction()
}

// Mount adds /auth/login, /auth/callback and /auth/logout, and refuses
// cross-origin unsafe requests everywhere.
func (a *Authenticator) Mount(e *echo.Echo) {
	e.Use(a.refuseCrossOrigin)
	if a.rp == nil {
		// No login to do: the login goes where it was asked to, and
		// there is nobody to log out.
		e.GET("/auth/login", func(c echo.Context) error {
			return c.Redirect(http.StatusFound, localPath(c.QueryParam("next")))
		})
		e.GET("/auth/logout", func(c echo.Context) error {
			return renderPage(c, http.StatusOK, page{Title: "No login", Message: "This console has no login (console.auth.none): everyone who reaches it is the same anonymous user.", Link: "/", LinkText: "Back to the console"})
		})
		return
	}
	a.rp.mount(e)
}

// Require lets a request in with its User set, or sends it to the login;
// on an unsafe method it also checks the CSRF token.
func (a *Authenticator) Require() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u := User{Identity: access.Identity{Name: "anonymous", Via: events.ViaConsole}, CSRF: a.noneCSRF}
			if a.rp != nil {
				s, _, ok, err := a.rp.current(c)
				if err != nil {
					a.log.Error("console sessions unavailable", "err", err)
					return refuse(c, http.StatusServiceUnavailable, "sessions unavailable", page{Title: "Console unavailable", Message: "The console cannot read its sessions right now; try again in a moment."})
				}
				if !ok {
					return loginRequired(c)
				}
				u = s.user()
			}
			if !safe(c.Request().Method) {
				if ok, err := checkToken(c, a.log, u); !ok {
					return err
				}
			}
			c.Set(userKey, u)
			return next(c)
		}
	}
}

const userKey = "slipway.user"

// UserOf is the request's user, set by Require.
func UserOf(c echo.Context) User {
	u, _ := c.Get(userKey).(User)
	return u
}

func safe(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// wantsPage reports whether the request is a browser navigating to a page
// (which can be sent to the login), rather than a script's request, a
// live stream or an API client (which get a status they can act on). A
// script marks itself with X-Requested-With, or the browser with
// Sec-Fetch-Mode; a navigation asks for HTML.
func wantsPage(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// loginRequired answers a request without a live session: a page
// navigation goes to the login and comes back; anything else gets 401.
func loginRequired(c echo.Context) error {
	r := c.Request()
	login := "/auth/login?next=" + url.QueryEscape(localPath(r.URL.RequestURI()))
	if wantsPage(r) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return c.Redirect(http.StatusFound, login)
	}
	return refuse(c, http.StatusUnauthorized, "login required", page{Title: "Login required", Message: "Your login has ended; nothing was changed.", Link: login, LinkText: "Log in again"})
}

// refuse answers a refused request: a page for a browser's navigation,
// JSON ({"error": msg}) for everything else.
func refuse(c echo.Context, status int, msg string, p page) error {
	if wantsPage(c.Request()) {
		return renderPage(c, status, p)
	}
	body := map[string]string{"error": msg}
	if status == http.StatusUnauthorized {
		body["login"] = "/auth/login"
	}
	return c.JSON(status, body)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
