package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
)

// viewsServer serves the console of cfg (console.auth.none unless cfg
// says otherwise) over real HTTP, reading rig's JetStream.
func viewsServer(t testing.TB, cfg *config.Config, rig *natsRig) (*httptest.Server, *server) {
	t.Helper()
	if cfg.Console.Auth.OIDC == nil {
		cfg.Console.Auth.None = true
	}
	d := app.Deps{Config: cfg, JS: rig.js, Health: health.NewChecker(), Metrics: prometheus.NewRegistry()}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := newServer(ctx, d, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	t.Cleanup(s.close)
	hs := httptest.NewServer(s.handler())
	t.Cleanup(hs.Close)
	return hs, s
}

// get fetches url and returns the response with its body read.
func get(t testing.TB, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

func TestLayoutNamesTheUserLinksEveryViewAndMarksTheCurrentOne(t *testing.T) {
	hs, _ := viewsServer(t, &config.Config{}, newNATSRig(t))
	resp, body := get(t, hs.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s\n%s", resp.Status, body)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q does not restrict scripts to the console's own", csp)
	}
	for _, want := range []string{
		`<a href="/" aria-current="page">Matrix</a>`,
		`<a href="/approvals">Approvals</a>`,
		`<a href="/timeline">Timeline</a>`,
		`<a href="/deadletters">Dead letters</a>`,
		`<a href="/inventory">Inventory</a>`,
		`<a href="/audit">Audit</a>`,
		`>anonymous</span>`,
		`<meta name="csrf-token" content="`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	// With console.auth.none there is nobody to log out.
	if strings.Contains(body, `action="/auth/logout"`) {
		t.Error("a logout form with console.auth.none")
	}
}

func TestStaticAssetsAreServedByContentHashAndCachedForGood(t *testing.T) {
	hs, _ := viewsServer(t, &config.Config{}, newNATSRig(t))
	_, body := get(t, hs.URL+"/")
	for _, name := range []string{"console.css", "console.js"} {
		m := regexp.MustCompile(`"(/static/[0-9a-f]{12}/` + regexp.QuoteMeta(name) + `)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("the page does not link %s by its content hash", name)
		}
		resp, asset := get(t, hs.URL+m[1])
		if resp.StatusCode != http.StatusOK || asset == "" {
			t.Fatalf("GET %s: %s", m[1], resp.Status)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q", name, cc)
		}
		// An older page's hash still gets the asset, but not for good.
		resp, _ = get(t, hs.URL+"/static/000000000000/"+name)
		if resp.StatusCode != http.StatusOK || strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s by a stale hash: %s, Cache-Control %q", name, resp.Status, resp.Header.Get("Cache-Control"))
		}
	}
	if resp, _ := get(t, hs.URL+"/static/x/nothing.css"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown asset: %s", resp.Status)
	}
}
