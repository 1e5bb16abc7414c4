package health

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// serveOps runs the ops listener on a free loopback port until the test
// ends and returns its base URL.
func serveOps(t *testing.T, profiling bool) string {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", NewChecker(), prometheus.NewRegistry(), profiling, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + srv.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestOpsListenerServesNoProfilesByDefault: without ops.pprof the runtime
// profiles are not reachable, while /metrics is.
func TestOpsListenerServesNoProfilesByDefault(t *testing.T) {
	base := serveOps(t, false)
	if code, _ := get(t, base+"/metrics"); code != http.StatusOK {
		t.Fatalf("/metrics: status %d, want 200", code)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if code, _ := get(t, base+path); code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404 without ops.pprof", path, code)
		}
	}
}

// TestOpsListenerServesProfilesWhenEnabled: with ops.pprof the index lists
// the profiles and a named profile (heap) is served in pprof's format.
func TestOpsListenerServesProfilesWhenEnabled(t *testing.T) {
	base := serveOps(t, true)
	code, index := get(t, base+"/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(index, "allocs") || !strings.Contains(index, "profile") {
		t.Fatalf("/debug/pprof/: status %d, body %.200q; want 200 listing allocs and profile", code, index)
	}
	code, heap := get(t, base+"/debug/pprof/heap?debug=1")
	if code != http.StatusOK || !strings.Contains(heap, "heap profile:") {
		t.Fatalf("/debug/pprof/heap: status %d, body %.200q; want a heap profile", code, heap)
	}
	if code, _ := get(t, base+"/debug/pprof/cmdline"); code != http.StatusOK {
		t.Fatalf("/debug/pprof/cmdline: status %d, want 200", code)
	}
}
