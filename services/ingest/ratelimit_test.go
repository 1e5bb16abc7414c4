package ingest_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// TestRateLimitPerSource: past its rate, a source gets 429 with
// Retry-After (registries retry), nothing is stored, and other sources are
// not affected.
func TestRateLimitPerSource(t *testing.T) {
	r := newRig(t)
	// One delivery per 1000 s, two at once: the third is refused whatever
	// the machine's speed.
	limited := config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none(), RateLimit: 0.001, Burst: 2}
	other := config.Source{Name: "other", Format: "distribution", Environment: "dev", Auth: none()}
	srv := r.serve(t, testConfig(config.Registry{}, limited, other))

	for i, tag := range []string{"1.0.0", "1.0.1"} {
		if code, _, _ := post(t, srv.URL+"/webhooks/dev-registry", envelope(distPush("e"+tag, "team/web", tag)), nil); code != http.StatusAccepted {
			t.Fatalf("delivery %d within the burst: %d", i+1, code)
		}
	}
	code, body, hdr := post(t, srv.URL+"/webhooks/dev-registry", envelope(distPush("e3", "team/web", "1.0.2")), nil)
	if code != http.StatusTooManyRequests || body["error"] == nil {
		t.Fatalf("past the rate: %d %v, want 429", code, body)
	}
	if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds", hdr.Get("Retry-After"))
	}
	if code, _, _ := post(t, srv.URL+"/webhooks/other", envelope(distPush("o1", "team/api", "2.0.0")), nil); code != http.StatusAccepted {
		t.Errorf("another source was limited too: %d", code)
	}
	if n := len(storedEvents(t, r.stream)); n != 3 {
		t.Errorf("%d events stored, want 3 (the refused delivery stores nothing)", n)
	}
}
