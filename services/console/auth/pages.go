package auth

import (
	"bytes"
	"cmp"
	"html/template"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

// The login's own pages: small, self-contained, and without anything of
// the console's layout, which only a logged-in user sees. Everything shown
// is escaped: an IdP's error description is text from outside.
var pages = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Slipway</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem}p.detail{color:#57606a}button{font:inherit;padding:.4rem 1rem}</style></head>
<body><main>
<h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Detail}}<p class="detail">{{.Detail}}</p>{{end}}
{{if .CSRF}}<form method="post" action="/auth/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit">Log out</button></form>{{end}}
{{if .Link}}<p><a href="{{.Link}}">{{.LinkText}}</a></p>{{end}}
</main></body></html>
`))

// page is what one of the login's pages says.
type page struct {
	Title, Message, Detail string
	// Link and LinkText: where to go from here.
	Link, LinkText string
	// CSRF, when set, shows the logout form with the session's token.
	CSRF string
	// formAction is the page's CSP form-action ('self' when empty): the
	// logout form's page must let its redirect to the provider through.
	formAction string
}

func renderPage(c echo.Context, status int, p page) error {
	var b bytes.Buffer
	if err := pages.Execute(&b, p); err != nil {
		return err
	}
	h := c.Response().Header()
	// These pages hold a CSRF token or describe a login: never cached,
	// never framed.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+cmp.Or(p.formAction, "'self'")+"; frame-ancestors 'none'")
	return c.HTMLBlob(status, b.Bytes())
}

func loginAgain(next string) (string, string) {
	return "/auth/login?next=" + url.QueryEscape(next), "Log in again"
}

// loginFailed is the page of a login that did not complete: the user can
// start again; the reason is for them (and the log has the rest).
func loginFailed(c echo.Context, status int, message, detail string) error {
	link, text := loginAgain("/")
	return renderPage(c, status, page{Title: "Login failed", Message: message, Detail: detail, Link: link, LinkText: text})
}

func unavailable(c echo.Context, message string) error {
	return renderPage(c, http.StatusServiceUnavailable, page{Title: "Login unavailable", Message: message, Link: "/auth/login", LinkText: "Try again"})
}
