package ingest_test

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// The running service sets the collector's target it was measured with,
// unless the operator's GOGC says otherwise.
func TestServiceSetsGCTargetUnlessGOGCIsSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	gogc, had := os.LookupEnv("GOGC")
	t.Cleanup(func() {
		if had {
			os.Setenv("GOGC", gogc)
		}
	})
	cfg := func() *config.Config {
		return testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()})
	}

	os.Unsetenv("GOGC")
	r := newRig(t)
	_, stop := r.runService(t, cfg())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GC target without GOGC: %d, want 150", got)
	}

	t.Setenv("GOGC", "100")
	_, stop = r.runService(t, cfg())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC target with GOGC=100: %d, want the operator's 100", got)
	}
}
