package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/services/console/auth"
)

// The console's pages and assets are part of the binary: nothing to
// deploy beside it, no CDN, no build step.
var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed static
	staticFS embed.FS
)

// layoutFile is the base every page is rendered in; every other file
// templates/NAME.html is the page NAME and defines "title" and "content"
// (and may define "head" for page-specific links).
const layoutFile = "layout.html"

// navItem is one entry of the navigation.
type navItem struct {
	Key, Label, Path string
}

// nav is the console's navigation, in the order it shows.
var nav = []navItem{
	{"matrix", "Matrix", "/"},
	{"approvals", "Approvals", "/approvals"},
	{"timeline", "Timeline", "/timeline"},
	{"deadletters", "Dead letters", "/deadletters"},
	{"inventory", "Inventory", "/inventory"},
	{"audit", "Audit", "/audit"},
}

// navOf is the navigation entry a page belongs to when its name is not one
// (an image page is reached from the matrix).
var navOf = map[string]string{"image": "matrix", "deadletter": "deadletters"}

// page is what the layout renders: who asks, where they are, and the
// page's own data (.Data in the page's template).
type page struct {
	User auth.User
	// CSRF is the token forms post back (field "csrf"); the script sends
	// it as X-CSRF-Token (it reads it from the meta tag).
	CSRF string
	// Logout is false with console.auth.none: there is nobody to log out.
	Logout bool
	Nav    []navItem
	Active string
	Name   string
	Data   any
}

// assets are the static files with the content hash their URLs carry, so
// that a browser caches them for good and a new binary's are fetched anew.
type assets struct {
	hash  map[string]string // file name → hash of its content
	files map[string][]byte
}

func loadAssets() (*assets, error) {
	a := &assets{hash: map[string]string{}, files: map[string][]byte{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		sum := sha256.Sum256(b)
		a.hash[name], a.files[name] = hex.EncodeToString(sum[:6]), b
		return nil
	})
	return a, err
}

// url is where the page links an asset: /static/HASH/NAME.
func (a *assets) url(name string) (string, error) {
	h, ok := a.hash[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return "/static/" + h + "/" + name, nil
}

// serve answers /static/HASH/NAME. The current content is served whatever
// the hash; it is cached for good only when the hash is the current one
// (a page of an older binary still gets its styles, revalidated).
func (a *assets) serve(c echo.Context) error {
	h, name := c.Param("hash"), c.Param("*")
	b, ok := a.files[name]
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such asset")
	}
	hdr := c.Response().Header()
	if h == a.hash[name] {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("ETag", `"`+a.hash[name]+`"`)
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return c.Blob(http.StatusOK, ct, b)
}

// views are the parsed pages, each a clone of the layout with its own
// "title" and "content".
type views struct {
	assets *assets
	pages  map[string]*template.Template
}

func loadViews() (*views, error) {
	a, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	funcs := template.FuncMap{"asset": a.url}
	for k, f := range viewFuncs {
		funcs[k] = f
	}
	base, err := template.New(layoutFile).Funcs(funcs).ParseFS(templateFS, "templates/"+layoutFile)
	if err != nil {
		return nil, fmt.Errorf("console layout: %w", err)
	}
	// The partials once, in the layout: every page's clone has them.
	if base, err = parsePartials(base); err != nil {
		return nil, fmt.Errorf("console partials: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	v := &views{assets: a, pages: map[string]*template.Template{}}
	for _, n := range names {
		file := path.Base(n)
		if file == layoutFile {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console page %s: %w", file, err)
		}
		v.pages[strings.TrimSuffix(file, ".html")] = t
	}
	return v, nil
}

// pageViews are the console's pages, parsed once: they are part of the
// binary, so a page that does not parse is a bug every test finds.
var pageViews = func() *views {
	v, err := loadViews()
	if err != nil {
		panic(err)
	}
	return v
}()

// viewFuncs are the helpers every template may use.
var viewFuncs = template.FuncMap{
	"shortDigest": shortDigest,
	"when":        when,
	"ago":         ago,
	"join":        strings.Join,
	// ref, at and shortID render references, times and ids compactly
	// (refs.go).
	"ref":     ref,
	"refName": refName,
	"at":      at,
	"shortID": shortID,
}

// shortDigest shows a digest as docker does: its first 12 hex digits.
func shortDigest(d string) string {
	if _, h, ok := strings.Cut(d, ":"); ok && len(h) > 12 {
		return h[:12]
	}
	if d == "" {
		return "-"
	}
	return d
}

// when is a time as the tables show it (UTC, to the second); "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago is a time's RFC 3339 form for the datetime attribute of <time>.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// render writes the page name within the layout with the request's user,
// CSRF token and navigation. A template that fails is a bug: the page is
// rendered into a buffer first so that the user gets a clean 500, not half
// a page.
func (s *server) render(c echo.Context, status int, name string, data any) error {
	return s.renderPart(c, status, name, layoutFile, data)
}

// renderPart writes the template part of page name (layoutFile for the
// whole page, or a part the page defines, such as the piece a script
// swaps in live) with what the layout gets: the same data, user and CSRF
// token, and the same headers.
func (s *server) renderPart(c echo.Context, status int, name, part string, data any) error {
	t, ok := pageViews.pages[name]
	if !ok {
		return fmt.Errorf("console: no page %q", name)
	}
	u := s.user(c)
	active := name
	if n, ok := navOf[name]; ok {
		active = n
	}
	var buf bytes.Buffer
	p := page{User: u, CSRF: u.CSRF, Logout: s.auth.Mode() != "none", Nav: nav, Active: active, Name: name, Data: data}
	if err := t.ExecuteTemplate(&buf, part, p); err != nil {
		s.log.Error("console: rendering a page failed", "page", name, "part", part, "err", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "the page could not be rendered")
	}
	setPageHeaders(c.Response().Header(), s.auth.FormAction())
	return c.HTMLBlob(status, buf.Bytes())
}

// setPageHeaders: pages load only the console's own scripts and styles,
// are never framed, and are not kept by shared caches (they show what the
// user may see). Forms post to the console only, though the logout form's
// answer may lead on to the provider's logout (formAction, from the
// login).
func setPageHeaders(h http.Header, formAction string) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action "+formAction+"; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "private, no-cache")
}
