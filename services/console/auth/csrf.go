package auth

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// checkToken checks the request's synchronizer token against the user's
// (the session's): a token of another session, of a session that was
// logged out, or a made-up one is refused with 403 before the handler runs,
// so nothing changes. The log names who and what, never the token. When
// ok is false the refusal has been answered: return err and nothing else.
func checkToken(c echo.Context, log *slog.Logger, u User) (ok bool, err error) {
	got := c.Request().Header.Get("X-CSRF-Token")
	if got == "" {
		got = c.FormValue("csrf")
	}
	if u.CSRF != "" && subtle.ConstantTimeCompare([]byte(got), []byte(u.CSRF)) == 1 {
		return true, nil
	}
	reason := "does not match the session's"
	if got == "" {
		reason = "missing"
	}
	r := c.Request()
	log.Warn("console: CSRF token refused", "reason", reason, "user", u.Name, "method", r.Method, "path", r.URL.Path, "remote", c.RealIP())
	return false, refuse(c, http.StatusForbidden, "missing or invalid CSRF token", page{
		Title:   "Request refused",
		Message: "This request did not carry this session's CSRF token, so nothing was changed. Reload the page and try again.",
		Link:    "/", LinkText: "Back to the console",
	})
}

// refuseCrossOrigin refuses an unsafe request that the browser says comes
// from another origin (Sec-Fetch-Site, or Origin against Host and the
// console's own origin): a second wall behind the CSRF token, and the only
// one for the login's own endpoints before a session exists.
func (a *Authenticator) refuseCrossOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := a.crossOrigin.Check(c.Request()); err != nil {
			r := c.Request()
			a.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", c.RealIP())
			return refuse(c, http.StatusForbidden, "cross-origin request refused", page{Title: "Request refused", Message: "This request came from another site, so nothing was changed.", Link: "/", LinkText: "Back to the console"})
		}
		return next(c)
	}
}

// localPath is next if it is a path on this console, else "/": the login
// never sends a browser to another site (no open redirect), nor back into
// the login itself. Browsers read a backslash as a slash, so "/\host" is as
// foreign as "//host".
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\x00\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(u.Path, "/auth/") {
		return "/"
	}
	return u.RequestURI()
}
