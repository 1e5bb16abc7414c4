// Package auth is how the console knows who is asking: OpenID Connect login
// (authorization code with PKCE), sessions, CSRF protection on every state
// change, and logout; or, with console.auth.none, everyone as one
// anonymous user with every permission.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Options configure an Authenticator.
type Options struct {
	Config *config.Config
	// JS keeps the sessions (so that every console replica knows them).
	JS  jetstream.JetStream
	Log *slog.Logger
	Now func() time.Time
}

// User is who asks, as a view sees them.
type User struct {
	access.Identity
	// CSRF is the token every form and script request of this session
	// must carry (field "csrf" or header X-CSRF-Token).
	CSRF string
}

// Authenticator logs users in and out and guards the views.
type Authenticator struct {
	opts   Options
	policy *access.Policy
	none   bool
	// noneCSRF is the CSRF token of the anonymous user (auth.none): one
	// per process.
	noneCSRF string
}

// New builds the Authenticator of opts.Config.Console.Auth.
func New(ctx context.Context, opts Options) (*Authenticator, error) {
	a := &Authenticator{opts: opts}
	if opts.Config.Console.Auth.None {
		a.none = true
		a.policy = access.Everyone()
		a.noneCSRF = randomToken()
		return a, nil
	}
	a.policy = access.New(opts.Config)
	return a, nil
}

// Policy is who may do what.
func (a *Authenticator) Policy() *access.Policy { return a.policy }

// Mode names the login for the start-up log line: "oidc" or "none".
func (a *Authenticator) Mode() string {
	if a.none {
		return "none"
	}
	return "oidc"
}

// Mount adds /auth/login, /auth/callback and /auth/logout.
func (a *Authenticator) Mount(e *echo.Echo) {}

// Require lets a request in with its User set, or sends it to the login;
// on an unsafe method it also checks the CSRF token.
func (a *Authenticator) Require() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u := User{Identity: access.Identity{Name: "anonymous", Via: events.ViaConsole}, CSRF: a.noneCSRF}
			if !safe(c.Request().Method) && !validCSRF(c, u.CSRF) {
				return echo.NewHTTPError(http.StatusForbidden, "missing or invalid CSRF token")
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

// validCSRF compares the request's token with the session's in constant
// time.
func validCSRF(c echo.Context, want string) bool {
	got := c.Request().Header.Get("X-CSRF-Token")
	if got == "" {
		got = c.FormValue("csrf")
	}
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
