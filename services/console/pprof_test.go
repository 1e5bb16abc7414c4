package console

import (
	"net/http"
	"testing"
)

// The process's runtime profiles are on the console's listener, where its
// metrics are, only with ops.pprof.
func TestProfilesAreServedOnlyWithOpsPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := testConfig()
		cfg.Ops.Pprof = on
		r := newConsoleRig(t, cfg)
		res, err := http.Get(r.http.URL + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if res.StatusCode != want {
			t.Errorf("ops.pprof %v: GET /debug/pprof/heap: %s, want %d", on, res.Status, want)
		}
	}
}
