package ingest_test

import (
	"net/http"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// TestRuntimeProfilesOnlyWithOpsPprof: ingest serves /metrics on its own
// listener, so that is where ops.pprof puts /debug/pprof/; without it the
// profiles are not there.
func TestRuntimeProfilesOnlyWithOpsPprof(t *testing.T) {
	for _, c := range []struct {
		pprof bool
		want  int
	}{{false, http.StatusNotFound}, {true, http.StatusOK}} {
		cfg := testConfig(config.Registry{},
			config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()})
		cfg.Ops.Pprof = c.pprof
		srv := newRig(t).serve(t, cfg)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/allocs"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("ops.pprof %v: %s answered %d, want %d", c.pprof, path, resp.StatusCode, c.want)
			}
		}
	}
}
