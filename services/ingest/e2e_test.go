package ingest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// e2e is a Distribution registry whose notifications go to ingest, which
// stores them on the embedded JetStream.
type e2e struct {
	*rig
	reg *testkit.Registry
}

const notifyToken = "Bearer registry-s3cret"

func newE2E(t *testing.T, codes chan int) *e2e {
	t.Helper()
	r := newRig(t)
	r.codes = codes
	r.listen(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{
		NotifyURL:     r.srv.URL + "/webhooks/dev-registry",
		NotifyHeaders: map[string][]string{"Authorization": {notifyToken}},
	})
	r.setHandler(t, testConfig(config.Registry{Host: reg.Host, Insecure: true}, config.Source{
		Name: "dev-registry", Format: "distribution", Environment: "dev",
		Auth: &config.Auth{Header: &config.HeaderAuth{Name: "Authorization", Value: notifyToken}},
	}))
	return &e2e{rig: r, reg: reg}
}

func (x *e2e) ref(repoTag string) string { return x.reg.Host + "/" + repoTag }

// pushed is what one push should produce.
type pushed struct {
	repository, tag string
	digest          v1.Hash
	mediaType       types.MediaType
}

// assertExactly checks that evs holds one event per push in want and
// nothing else.
func assertExactly(t *testing.T, x *e2e, evs []events.Event, want ...pushed) {
	t.Helper()
	if len(evs) != len(want) {
		for _, e := range evs {
			t.Logf("event %s", e.Subject())
		}
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	seen := map[string]bool{}
	for _, e := range evs {
		d := pushedData(t, e)
		key := d.Repository + ":" + d.Tag
		if seen[key] {
			t.Fatalf("two events for %s", key)
		}
		seen[key] = true
		found := false
		for _, w := range want {
			if w.repository == d.Repository && w.tag == d.Tag {
				found = true
				if d.Digest != w.digest.String() || d.MediaType != string(w.mediaType) || d.Registry != x.reg.Host || d.Environment != "dev" {
					t.Errorf("%s: registry %s env %s digest %s type %s, want %s %s %s %s", key, d.Registry, d.Environment, d.Digest, d.MediaType, x.reg.Host, "dev", w.digest, w.mediaType)
				}
				if e.Subject() != x.ref(key)+"@"+w.digest.String() {
					t.Errorf("subject %s", e.Subject())
				}
			}
		}
		if !found {
			t.Errorf("unexpected event for %s", key)
		}
	}
}

func pushImage(t *testing.T, x *e2e, repo, tag string) pushed {
	t.Helper()
	img := testkit.PushRandomImage(t, x.ref(repo+":"+tag))
	return pushed{repo, tag, must(img.Digest()), must(img.MediaType())}
}

func pushIndex(t *testing.T, x *e2e, repo, tag string, n int) pushed {
	t.Helper()
	idx := testkit.PushRandomIndex(t, x.ref(repo+":"+tag), n)
	return pushed{repo, tag, must(idx.Digest()), must(idx.MediaType())}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestEndToEndDistribution(t *testing.T) {
	x := newE2E(t, nil)
	w := watch(t, x.js)

	web := pushImage(t, x, "team/web", "1.0.0")
	multi := pushIndex(t, x, "team/multi", "2.0.0", 3)

	// The same tag again with the same content. remote.Write would HEAD
	// first and skip the manifest; Put sends it, so the registry notifies.
	img, err := remote.Image(must(name.ParseReference(x.ref("team/web:1.0.0"))), testkit.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(must(name.ParseReference(x.ref("team/web:1.0.0"))), img, testkit.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}

	sentinel := pushImage(t, x, "team/sentinel", "1")
	evs := w.until(t, tagged("team/sentinel", "1"))
	assertExactly(t, x, evs, web, multi, sentinel)

	// The re-push did arrive, and died as a duplicate.
	if n := metricValue(t, x.metrics, "slipway_ingest_events_total", map[string]string{"source": "dev-registry", "outcome": "duplicate"}); n != 1 {
		t.Fatalf("%v duplicates counted, want the re-push's 1", n)
	}
	if n := len(storedEvents(t, x.stream)); n != 3 {
		t.Fatalf("%d messages in the stream, want 3", n)
	}
}

func TestNATSRestartWhileWebhooksArrive(t *testing.T) {
	codes := make(chan int, 10000)
	x := newE2E(t, codes)
	w := watch(t, x.js)
	before := pushImage(t, x, "team/before", "1")
	w.until(t, tagged("team/before", "1"))

	reconnected := x.nc.StatusChanged(nats.CONNECTED)
	x.nats.Shutdown()
	web := pushImage(t, x, "team/web", "1.0.0")
	multi := pushIndex(t, x, "team/multi", "2.0.0", 3)
	// The registry's notification of a manifest push is refused while the
	// events cannot be stored: 503, never 202.
	waitFor503(t, codes)

	x.nats.Restart(t)
	waitConnected(t, x.nc, reconnected, x.js)
	// The registry's retries land now; the sentinel queues behind them.
	sentinel := pushImage(t, x, "team/sentinel", "1")
	evs := watch(t, x.js).until(t, tagged("team/sentinel", "1"))
	assertExactly(t, x, evs, before, web, multi, sentinel)
	if n := len(storedEvents(t, x.stream)); n != 4 {
		t.Fatalf("%d messages in the stream, want 4", n)
	}
}

func waitFor503(t *testing.T, codes <-chan int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case c := <-codes:
			if c == http.StatusServiceUnavailable {
				return
			}
		case <-deadline:
			t.Fatal("no 503 while NATS was down")
		}
	}
}
