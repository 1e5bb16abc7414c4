package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultChromiumPath is where Debian's chromium package installs the
// browser; $CHROMIUM names another.
const DefaultChromiumPath = "/usr/bin/chromium"

// BrowserWait bounds each of the browser helpers' waits (a page that never
// shows what the test waits for fails the test after this long, naming
// what was awaited and where the browser was).
const BrowserWait = 15 * time.Second

// Browser window size: wide enough for the console's tables.
const (
	BrowserWidth  = 1280
	BrowserHeight = 900
)

// browserFlags are the flags Chromium is started with, and only these
// (chromedp's defaults are not used, so that what the tests run is what
// the flags say): headless, no sandbox (CI runs as root, where the sandbox
// refuses to start), no GPU, and none of the background traffic to Google
// a fresh profile makes.
var browserFlags = []string{
	"headless", "no-sandbox", "disable-gpu", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync",
}

// ChromiumPath returns the browser the tests use: $CHROMIUM if set, else
// DefaultChromiumPath; "" and the reason when it is not an executable.
func ChromiumPath() (string, error) {
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = DefaultChromiumPath
	}
	path, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("no Chromium at %s: %w", p, err)
	}
	return path, nil
}

// Browser starts a headless Chromium with a fresh profile in t.TempDir()
// and returns a chromedp context of its first tab; the browser is closed
// at t.Cleanup. Without Chromium the test fails under CI=true (.ci/run
// installs it) and is skipped otherwise, saying how to install it.
//
// Run actions with chromedp.Do / chromedp.Run on the context; bound each
// wait with the helpers below (WaitVisible, TextOf) or a context derived
// with a timeout, never the returned context itself: a timeout on it
// would stop the browser.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path, err := ChromiumPath()
	if err != nil {
		prerequisiteMissing(t, err.Error(), "apt-get install chromium, or set CHROMIUM to a Chromium or Chrome binary")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path)}
	for _, f := range browserFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	output := &capped{max: 16 << 10}
	opts = append(opts,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(BrowserWidth, BrowserHeight),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	// Cleanups run last-registered first: close the browser gracefully,
	// then make sure the process is gone (the allocator waits for it)
	// before t.TempDir's profile is removed.
	t.Cleanup(cancelAlloc)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("testkit: closing the browser: %v", err)
		}
		cancelTab()
	})
	// The first action starts the browser, with no timeout on ctx
	// (chromedp ties the browser's life to that context); the start is
	// bounded by the allocator's own wait for the browser to answer.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("testkit: start %s: %v\n%s", path, err, output.String())
	}
	return ctx
}

// capped keeps the first max bytes written to it (the browser's output,
// shown when it fails to start).
type capped struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// BrowserDo runs the steps on the browser's tab within BrowserWait,
// failing the test with what and where on an error.
func BrowserDo(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, BrowserWait)
	defer cancel()
	if err := chromedp.Do(wctx, steps...); err != nil {
		t.Fatalf("testkit: browser at %s: %v", browserLocation(ctx), err)
	}
}

// WaitVisible waits up to BrowserWait for an element matching the CSS
// selector to be visible, failing the test with the page's address and
// text when none shows.
func WaitVisible(t testing.TB, ctx context.Context, selector string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, BrowserWait)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
		t.Fatalf("testkit: browser: %s did not show within %s: %v\nat %s, the page says:\n%s",
			selector, BrowserWait, err, browserLocation(ctx), pageText(ctx))
	}
}

// TextOf waits for the element matching the CSS selector to be visible
// and returns its text, trimmed.
func TextOf(t testing.TB, ctx context.Context, selector string) string {
	t.Helper()
	WaitVisible(t, ctx, selector)
	wctx, cancel := context.WithTimeout(ctx, BrowserWait)
	defer cancel()
	text, err := chromedp.Run(wctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("testkit: browser: text of %s: %v", selector, err)
	}
	return strings.TrimSpace(text)
}

// Location returns the address of the browser tab's page.
func Location(t testing.TB, ctx context.Context) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, BrowserWait)
	defer cancel()
	loc, err := chromedp.Run(wctx, chromedp.Location())
	if err != nil {
		t.Fatalf("testkit: browser: location: %v", err)
	}
	return loc
}

// Screenshot writes a PNG of the whole page (beyond the window's height)
// to path, creating its directories.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, BrowserWait)
	defer cancel()
	png, err := chromedp.Run(wctx, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	if err != nil {
		t.Fatalf("testkit: screenshot of %s: %v", browserLocation(ctx), err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("testkit: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("testkit: screenshot: %v", err)
	}
}

// browserLocation and pageText describe the page for a failure message,
// best effort and briefly bounded: the browser may be what failed.
func browserLocation(ctx context.Context) string {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(wctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return loc
}

func pageText(ctx context.Context) string {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	text, err := chromedp.Run(wctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	const limit = 2000
	if len(text) > limit {
		text = text[:limit] + "…"
	}
	return text
}
