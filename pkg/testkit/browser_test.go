package testkit_test

import (
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

func TestBrowserSignsInThroughTheProvidersFormAndSeesTheUsersName(t *testing.T) {
	ctx := testkit.Browser(t)
	p := testkit.NewOIDCProvider(t, alice)
	rp := newRelyingParty(t, p)

	testkit.BrowserDo(t, ctx, chromedp.Navigate(rp.URL+"/login"))
	testkit.WaitVisible(t, ctx, "#username")
	if loc := testkit.Location(t, ctx); !strings.HasPrefix(loc, p.Issuer+"/login") {
		t.Fatalf("the relying party's /login led to %s, not the provider's form", loc)
	}

	testkit.BrowserDo(t, ctx,
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "not-alice-pw"),
		chromedp.Click(chromedp.ID("login")),
	)
	if msg := testkit.TextOf(t, ctx, "#error"); msg != "wrong username or password" {
		t.Errorf("after a wrong password the form says %q", msg)
	}

	// The form keeps the username; the password is typed again.
	testkit.BrowserDo(t, ctx,
		chromedp.SendKeys(chromedp.ID("password"), "alice-pw"),
		chromedp.Click(chromedp.ID("login")),
	)
	if name := testkit.TextOf(t, ctx, "#user"); name != "Alice Example" {
		t.Fatalf("the relying party greets %q, want Alice Example", name)
	}
	if loc := testkit.Location(t, ctx); loc != rp.URL+"/" {
		t.Errorf("signed in at %s, want %s/", loc, rp.URL)
	}
	if logins := rp.Logins(); len(logins) != 1 || logins[0].Claims.Groups == nil {
		t.Errorf("relying party logins %+v; want one, with groups", logins)
	}
}

func TestScreenshotWritesTheWholePageAsPNG(t *testing.T) {
	ctx := testkit.Browser(t)
	const height = 2500 // beyond the window's 900
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<!DOCTYPE html><html><body style="margin:0">
<div id="tall" style="height:2500px;background:linear-gradient(#fff,#036)">tall</div></body></html>`)
	}))
	t.Cleanup(srv.Close)
	testkit.BrowserDo(t, ctx, chromedp.Navigate(srv.URL))
	testkit.WaitVisible(t, ctx, "#tall")

	path := filepath.Join(t.TempDir(), "shots", "nested", "tall.png")
	testkit.Screenshot(t, ctx, path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	// The window's width, less the vertical scrollbar's (Chromium runs
	// without --hide-scrollbars), by the page's whole height.
	const scrollbar = 20
	if b := img.Bounds(); b.Dy() < height || b.Dx() > testkit.BrowserWidth || b.Dx() < testkit.BrowserWidth-scrollbar {
		t.Errorf("screenshot is %dx%d; want the whole page, about %d wide and at least %d high", b.Dx(), b.Dy(), testkit.BrowserWidth, height)
	}
}

func TestBrowserWithoutChromiumFailsUnderCIAndSkipsOtherwise(t *testing.T) {
	t.Setenv("CHROMIUM", filepath.Join(t.TempDir(), "no-chromium"))

	t.Setenv("CI", "true")
	o, _ := run(t, func(tb testing.TB) string { testkit.Browser(tb); return "" })
	if o.fatal == "" || o.skip != "" {
		t.Fatalf("under CI=true: fatal %q, skip %q; want a failure", o.fatal, o.skip)
	}
	if !strings.Contains(o.fatal, "no-chromium") || !strings.Contains(o.fatal, "CI=true") {
		t.Errorf("failure message %q names neither the path nor CI", o.fatal)
	}

	t.Setenv("CI", "")
	o, _ = run(t, func(tb testing.TB) string { testkit.Browser(tb); return "" })
	if o.skip == "" || o.fatal != "" {
		t.Fatalf("outside CI: fatal %q, skip %q; want a skip", o.fatal, o.skip)
	}
	if !strings.Contains(o.skip, "apt-get install chromium") {
		t.Errorf("skip message %q does not say how to install Chromium", o.skip)
	}
}
