package promoter_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// The promoter copies only from the push's environment's configured
// registry. An event that names another host (published to the stream by
// something other than ingest) is refused with a permanent
// promotion.failed: neither the registry it names nor a host that is no
// registry at all is ever asked for anything, and the target gets nothing.
func TestForeignRegistryIsNeverReadFrom(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	foreign := testkit.NewRegistry(t, testkit.RegistryOptions{})
	testkit.PushRandomImage(t, foreign.Host+"/apps/web:6.6.6")
	dig := testkit.Digest(t, foreign.Host+"/apps/web:6.6.6")
	var asked atomic.Int64 // a host that is no registry: would the promoter send it requests (SSRF)?
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	t.Cleanup(spy.Close)
	spyHost := strings.TrimPrefix(spy.URL, "http://")

	e := newEnv(t, dev.Host, tst.Host, rule, "")
	e.start(promoter.New())
	e.pushedFrom(foreign.Host, "apps/web", "6.6.6", dig, time.Now())
	e.pushedFrom(spyHost, "apps/web", "6.6.7", dig, time.Now())
	failed := e.seen.Wait(t, events.TypePromotionFailed, 2)
	e.drained()

	byTag := map[string]events.PromotionFailed{} // the promoter handles events concurrently: any order
	for _, f := range failed {
		d, _ := events.DataAs[events.PromotionFailed](f)
		byTag[d.From.Tag] = d
	}
	for tag, host := range map[string]string{"6.6.6": foreign.Host, "6.6.7": spyHost} {
		d := byTag[tag]
		if d.Retryable || !strings.Contains(d.Error, host) || !strings.Contains(d.Error, dev.Host) {
			t.Errorf("promotion.failed for %s: %+v, want a permanent failure naming %s and dev's registry %s", host, d, host, dev.Host)
		}
	}
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Errorf("%d image.promoted from a foreign registry", n)
	}
	if _, err := testkit.TryDigest(tst.Host + "/apps/web:6.6.6"); err == nil {
		t.Error("tst holds the foreign registry's image")
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the promoter sent %d requests to a host taken from an event", n)
	}
}

// A push that names dev's registry by an alias is copied from dev's
// configured host.
func TestAliasIsReadFromTheConfiguredHost(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule, "")
	e.cfg.Environments[0].Registry.Aliases = []string{"registry.dev.example"}
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	dig := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")
	e.pushedFrom("REGISTRY.dev.example:443", "apps/web", "1.0.0", dig, time.Now())
	p := e.seen.Wait(t, events.TypeImagePromoted, 1)
	d, _ := events.DataAs[events.ImagePromoted](p[0])
	if d.From.Registry != dev.Host {
		t.Errorf("from %s, want dev's configured host %s", d.From.String(), dev.Host)
	}
	if got := testkit.Digest(t, tst.Host+"/apps/web:1.0.0"); got != dig {
		t.Errorf("tst has %s, want %s", got, dig)
	}
}
