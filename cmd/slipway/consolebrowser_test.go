package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// domDeadline bounds every wait on the page: a cell filling, an element
// appearing, a navigation ending.
const domDeadline = 45 * time.Second

// screenshotsEnv names the directory the console's screenshots go to; by
// default bin/screenshots of the repository (git-ignored). `make
// screenshots` points it at docs/images/console to refresh the committed
// ones.
const screenshotsEnv = "SLIPWAY_SCREENSHOTS"

// screenshotMaxHeight bounds a screenshot's height in pixels.
const screenshotMaxHeight = 900

// tab is one person's window on the console: a browser context of its own
// (its own cookies), so that several users can be signed in at once.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // the console, without a trailing slash
}

// openTab opens a window with cookies of its own on the console at base.
func openTab(t *testing.T, b *browser, base string) *tab {
	t.Helper()
	ctx := b.newContext(t)
	return &tab{t: t, ctx: ctx, base: strings.TrimSuffix(base, "/")}
}

// run runs browser actions with the DOM deadline.
func (p *tab) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %s: %v (at %s)", what, err, p.location())
	}
}

// open navigates to path (or an absolute URL) and waits for the page to
// load.
func (p *tab) open(path string) {
	p.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = p.base + path
	}
	// A navigation the page started itself (a form's answer, a script's
	// reload) can abort this one: then it is asked again, within the DOM
	// deadline.
	deadline := time.Now().Add(domDeadline)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, time.Until(deadline))
		err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("body")))
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "ERR_ABORTED") || time.Now().After(deadline) {
			p.t.Fatalf("browser: open %s: %v (at %s)", u, err, p.location())
		}
	}
}

// location is the page's URL.
func (p *tab) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return u
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into out (JSON).
func (p *tab) eval(js string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domDeadline)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("browser: evaluate %s: %v (at %s)", js, err, p.location())
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("browser: evaluate %s: %v", js, err)
		}
	}
}

// waitJS waits until the JavaScript expression is truthy in the page,
// checked every 50 ms until the DOM deadline. A check that fails because
// the page is navigating counts as not yet.
func (p *tab) waitJS(what, js string) {
	p.t.Helper()
	deadline := time.Now().Add(domDeadline)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			p.t.Fatalf("browser: no %s within %s (last error: %v; at %s)\n%s", what, domDeadline, lastErr, p.location(), p.text("main"))
		}
		<-tick.C
	}
}

// text is the visible text of the first element matching sel ("" when
// none).
func (p *tab) text(sel string) string {
	var s string
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{innerText:""}).innerText`, sel)))
	if err == nil {
		s = raw
	}
	return s
}

// html is the page's HTML as the browser has it now.
func (p *tab) html() string {
	p.t.Helper()
	var s string
	p.eval(`document.documentElement.outerHTML`, &s)
	return s
}

// click clicks the first element matching the CSS selector.
func (p *tab) click(sel string) {
	p.t.Helper()
	p.run("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// login signs u in from the console's login: the console sends the
// browser to the provider's form, which posts back, and the provider
// redirects to the console's callback and on to the matrix.
func (p *tab) login(u testkit.OIDCUser) {
	p.t.Helper()
	p.open("/auth/login")
	p.run("sign in as "+u.Username,
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), u.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), u.Password),
		chromedp.Click(chromedp.CSS("#login")),
	)
	p.waitJS("the console after the login of "+u.Username,
		fmt.Sprintf(`location.href.startsWith(%q) && !!document.querySelector("header .user")`, p.base))
}

// fetch makes a request from the page (the session's cookies go with it,
// as a script of the page would send them) and returns its status and
// body.
func (p *tab) fetch(method, path string, headers map[string]string, form map[string]string) (int, string) {
	p.t.Helper()
	if headers == nil {
		headers = map[string]string{}
	}
	if form == nil {
		form = map[string]string{}
	}
	h, _ := json.Marshal(headers)
	f, _ := json.Marshal(form)
	js := fmt.Sprintf(`(async () => {
  const headers = %s;
  const form = %s;
  const init = {method: %q, credentials: "same-origin", headers: headers};
  if (Object.keys(form).length) { init.body = new URLSearchParams(form); }
  const r = await fetch(%q, init);
  return {status: r.status, body: await r.text()};
})()`, h, f, method, path)
	ctx, cancel := context.WithTimeout(p.ctx, domDeadline)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("browser: fetch %s %s: %v", method, path, err)
	}
	return res.Status, res.Body
}

// csrf is the session's CSRF token as the page carries it.
func (p *tab) csrf() string {
	p.t.Helper()
	var s string
	p.eval(`(document.querySelector('meta[name="csrf-token"]')||{content:""}).content`, &s)
	return s
}

// markPage sets a marker on the page's window; pageKept tells whether the
// same page (no reload, no navigation) still has it.
func (p *tab) markPage() {
	p.t.Helper()
	p.eval(`window.__slipwayTestMark = "kept"; true`, nil)
}

func (p *tab) pageKept() bool {
	p.t.Helper()
	var s string
	p.eval(`window.__slipwayTestMark || ""`, &s)
	return s == "kept"
}

// screenshot writes a full-page PNG of the page (up to
// screenshotMaxHeight), 1280 wide, as name.png to the screenshots
// directory. Not testkit.Screenshot: that one takes the whole page however
// long, and a timeline of hundreds of events would make an image of
// megabytes for the docs.
func (p *tab) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(p.ctx, domDeadline)
	defer cancel()
	var height int64
	p.eval(`document.documentElement.scrollHeight`, &height)
	height = min(max(height, 600), screenshotMaxHeight)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, height)); err != nil {
		p.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// browser is one headless Chromium for a test and its sub-tests (pkg/
// testkit's, which fails under CI=true without Chromium and skips
// otherwise); each tab is a browser context of its own.
type browser struct {
	ctx context.Context
}

// startBrowser starts headless Chromium, stopped at t.Cleanup.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	return &browser{ctx: testkit.Browser(t)}
}

// newContext is a browser context of its own (cookies, storage), closed at
// t.Cleanup.
func (b *browser) newContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open a browser context: %v", err)
	}
	t.Cleanup(cancel)
	return ctx
}

// sibling opens another window of the same person (the same cookies).
func (p *tab) sibling() *tab {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		p.t.Fatalf("open a second window: %v", err)
	}
	p.t.Cleanup(cancel)
	return &tab{t: p.t, ctx: ctx, base: p.base}
}

// matrixCellJS is a function of (app id, cluster) that returns the text of
// the release matrix's cell of that workload on that cluster, or null.
const matrixCellJS = `((app, cluster) => {
  const heads = [...document.querySelectorAll("table.matrix thead tr:nth-child(2) th")].map(th => th.innerText.trim());
  const col = heads.indexOf(cluster);
  if (col < 0) return null;
  for (const tr of document.querySelectorAll("table.matrix tbody tr")) {
    const th = tr.querySelector("th[scope=row]");
    if (!th || th.firstChild.textContent.trim() !== app) continue;
    const td = tr.querySelectorAll("td")[col];
    return td ? td.innerText : null;
  }
  return null;
})`

// cell is the text of the matrix cell of app on cluster ("" when there is
// none).
func (p *tab) cell(app, cluster string) string {
	p.t.Helper()
	var s *string
	p.eval(fmt.Sprintf(`%s(%q, %q)`, matrixCellJS, app, cluster), &s)
	if s == nil {
		return ""
	}
	return *s
}

// waitCell waits until the matrix cell of app on cluster shows want.
func (p *tab) waitCell(app, cluster, want string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf("%s on %s showing %s", app, cluster, want),
		fmt.Sprintf(`(%s(%q, %q) || "").includes(%q)`, matrixCellJS, app, cluster, want))
}

// clickInJS clicks, in the smallest row, item or form whose text contains
// the first argument, the button or link whose label starts with the
// second (case-insensitive); it returns whether it found one.
const clickInJS = `((text, label) => {
  const boxes = [...document.querySelectorAll("tr, li, article, form, section, td, div")]
    .filter(e => e.innerText.includes(text))
    .sort((a, b) => a.innerText.length - b.innerText.length);
  for (const box of boxes) {
    const el = [...box.querySelectorAll("button, input[type=submit], a")]
      .find(b => (b.innerText || b.textContent || b.value || "").trim().toLowerCase().startsWith(label));
    if (el) { el.click(); return true; }
  }
  return false;
})`

// clickIn clicks the button labelled label in the row that says text.
func (p *tab) clickIn(text, label string) {
	p.t.Helper()
	var ok bool
	p.eval(fmt.Sprintf(`%s(%q, %q)`, clickInJS, text, strings.ToLower(label)), &ok)
	if !ok {
		p.t.Fatalf("no %q button next to %q at %s:\n%s", label, text, p.location(), p.text("main"))
	}
}

// clickButton clicks the page's first button labelled label.
func (p *tab) clickButton(label string) {
	p.t.Helper()
	p.clickIn("", label)
}

// followLink clicks the first link whose text contains text and waits for
// the page it leads to.
func (p *tab) followLink(text string) {
	p.t.Helper()
	var href string
	p.eval(fmt.Sprintf(`([...document.querySelectorAll("main a")].find(a => a.innerText.includes(%q)) || {href: ""}).href`, text), &href)
	if href == "" {
		p.t.Fatalf("no link %q at %s:\n%s", text, p.location(), p.text("main"))
	}
	p.open(href)
}

// check ticks the checkbox of the row that says text.
func (p *tab) check(text string) {
	p.t.Helper()
	var ok bool
	p.eval(fmt.Sprintf(`(() => {
  const rows = [...document.querySelectorAll("tr, li, article")].filter(e => e.innerText.includes(%q))
    .sort((a, b) => a.innerText.length - b.innerText.length);
  for (const r of rows) {
    const box = r.querySelector("input[type=checkbox]");
    if (box) { if (!box.checked) box.click(); return true; }
  }
  return false;
})()`, text), &ok)
	if !ok {
		p.t.Fatalf("no checkbox next to %q at %s:\n%s", text, p.location(), p.text("main"))
	}
}

// logout logs out with the header's button and waits until the browser
// has left the console: the provider ends its session and sends the
// browser back to the console, which sends it on to the provider's login
// form (nobody is signed in any more).
func (p *tab) logout() {
	p.t.Helper()
	p.click("form.logout button")
	p.waitJS("the provider's login form after the logout",
		fmt.Sprintf(`!location.href.startsWith(%q) && !!document.querySelector("#username")`, p.base+"/"))
}

// ensureLogin signs u in unless the tab's session is still good: a
// sub-test run alone (go test -run) finds the tab signed out.
func (p *tab) ensureLogin(u testkit.OIDCUser) {
	p.t.Helper()
	p.open("/")
	if !strings.HasPrefix(p.location(), p.base+"/") || p.text("header .user") == "" {
		p.login(u)
	}
}

// sessionCookie is the value of the tab's console session cookie (HttpOnly:
// read through the browser's protocol, as no page script can).
func (p *tab) sessionCookie() string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, domDeadline)
	defer cancel()
	res, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (*network.GetCookiesResult, error) {
		r, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{p.base + "/"}})
		return &r, err
	})
	if err != nil {
		p.t.Fatalf("browser: cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == consoleSessionCookie {
			return c.Value
		}
	}
	return ""
}

// consoleSessionCookie is the console's session cookie over plain HTTP.
const consoleSessionCookie = "slipway-session"

// rollback asks for app on cluster to be rolled back: with the matrix
// cell's own button when it has one, else on the image page the cell
// links to, next to the cluster.
func (p *tab) rollback(app, cluster string) {
	p.t.Helper()
	var res struct{ Clicked, Href string }
	p.eval(fmt.Sprintf(`((app, cluster) => {
  const heads = [...document.querySelectorAll("table.matrix thead tr:nth-child(2) th")].map(th => th.innerText.trim());
  const col = heads.indexOf(cluster);
  for (const tr of document.querySelectorAll("table.matrix tbody tr")) {
    const th = tr.querySelector("th[scope=row]");
    if (!th || th.firstChild.textContent.trim() !== app) continue;
    const td = tr.querySelectorAll("td")[col];
    if (!td) break;
    // textContent: the cell's buttons are in a closed menu, which
    // innerText does not see.
    const b = [...td.querySelectorAll("button, input[type=submit]")].find(b => (b.textContent || b.value).trim().toLowerCase().startsWith("roll back"));
    if (b) { b.click(); return {Clicked: "yes", Href: ""}; }
    const a = td.querySelector("a[href^='/images/']");
    return {Clicked: "", Href: a ? a.href : ""};
  }
  return {Clicked: "", Href: ""};
})(%q, %q)`, app, cluster), &res)
	if res.Clicked != "" {
		p.waitJS("the rollback's answer", `location.pathname === "/timeline" && document.readyState === "complete"`)
		return
	}
	if res.Href == "" {
		p.t.Fatalf("no rollback for %s on %s in the matrix:\n%s", app, cluster, p.text("main"))
	}
	p.open(res.Href)
	p.clickIn(cluster, "roll back")
}

// waitCellReloading waits until the matrix cell of app on cluster shows
// want, loading the page again between looks: for a test about what
// happens next, not about the matrix following the stream.
func (p *tab) waitCellReloading(app, cluster, want string) {
	p.t.Helper()
	testkit.WaitFor(p.t, fmt.Sprintf("%s on %s showing %s", app, cluster, want), func() bool {
		p.open("/")
		return strings.Contains(p.cell(app, cluster), want)
	})
}
