package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
)

// A burst of 503s (what Marathon answers without a leader or when
// overloaded, per the reference) ends and the API serves again; failed
// requests are recorded with their status.
func TestFailBurstThenRecovery(t *testing.T) {
	e := newEnv(t, Options{})
	e.emu.Faults().FailNext(3, http.StatusServiceUnavailable)
	for i := 0; i < 3; i++ {
		r := e.must(503, e.putImage("/dev/app1", "x:2", ""))
		if m := r.json(t); m["message"] == nil {
			t.Errorf("503 body %s", r.body)
		}
	}
	e.must(200, e.putImage("/dev/app1", "x:2", ""))
	e.must(200, e.do("GET", "/v2/apps", ""))

	var puts []Request
	for _, r := range e.emu.Requests() {
		if r.Method == "PUT" {
			puts = append(puts, r)
		}
	}
	if len(puts) != 4 || puts[0].Status != 503 || puts[3].Status != 200 || puts[3].Path != "/v2/apps/dev/app1" {
		t.Fatalf("recorded PUTs %+v", puts)
	}
	if puts[3].Body != `{"container":{"type":"DOCKER","docker":{"image":"x:2"}}}` {
		t.Errorf("recorded body %q", puts[3].Body)
	}
}

// Latency delays answers: a client whose deadline is far shorter than
// the injected latency times out; without latency it does not.
func TestLatency(t *testing.T) {
	e := newEnv(t, Options{})
	e.emu.Faults().SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v2/apps", nil)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline to pass first", err)
	}
	e.emu.Faults().SetLatency(0)
	e.must(200, e.do("GET", "/v2/apps", ""))
}

// The admin endpoints drive the same faults over HTTP, need no auth and
// are not recorded.
func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, Options{BasicAuth: &[2]string{"u", "p"}})
	r := e.must(200, e.do("POST", "/_emulator/faults", `{"fail":{"count":2,"status":502},"latencyMs":5,"refuseEventStreams":1}`))
	var st FaultState
	if err := json.Unmarshal(r.body, &st); err != nil || st.FailRemaining != 2 || st.FailStatus != 502 || st.LatencyMs != 5 || st.RefuseRemaining != 1 {
		t.Fatalf("state %s (%v)", r.body, err)
	}
	e.must(502, e.do("GET", "/v2/apps", ""))
	e.must(502, e.do("GET", "/v2/apps", ""))
	e.must(401, e.do("GET", "/v2/apps", "")) // faults used up: auth applies again
	e.must(204, e.do("DELETE", "/_emulator/faults", ""))
	if st := e.emu.Faults().State(); st != (FaultState{}) {
		t.Errorf("after DELETE: %+v", st)
	}

	e.must(200, e.do("PUT", "/v2/apps/dev/app1", `{"instances":1}`, "Authorization", "Basic dTpw"))
	var reqs []Request
	_ = json.Unmarshal(e.must(200, e.do("GET", "/_emulator/requests", "")).body, &reqs)
	if len(reqs) != 1 || reqs[0].Method != "PUT" || reqs[0].Status != 200 {
		t.Fatalf("requests %+v", reqs)
	}

	e.must(204, e.do("POST", "/_emulator/settle", ""))
	var deps []DeploymentStatus
	_ = json.Unmarshal(e.must(200, e.do("GET", "/_emulator/deployments", "")).body, &deps)
	if len(deps) != 1 || deps[0].Status != "succeeded" {
		t.Errorf("deployments %+v", deps)
	}

	e.must(204, e.do("POST", "/_emulator/load", `{"apps":[{"id":"/extra/one","cmd":"x"}]}`))
	e.must(200, e.do("GET", "/v2/apps/extra/one", "", "Authorization", "Basic dTpw"))
	e.must(204, e.do("POST", "/_emulator/reset", ""))
	if len(e.emu.Requests()) != 0 || len(e.emu.Deployments()) != 0 {
		t.Error("reset kept requests or deployments")
	}
	// Reset returns to the seeded state: the seed and the later load.
	if app, ok := e.emu.App("/dev/app1"); !ok || !json.Valid(app) {
		t.Error("seeded app gone after reset")
	}
	if _, ok := e.emu.App("/extra/one"); !ok {
		t.Error("loaded app gone after reset")
	}
	e.must(404, e.do("GET", "/_emulator/nope", ""))
}

// Settle decides pending health checks at once, so tests with a long
// DeployDuration need neither sleeps nor polling.
func TestSettle(t *testing.T) {
	e := newEnv(t, Options{DeployDuration: time.Hour})
	dep := e.must(201, e.do("POST", "/v2/apps", `{"id":"/dev/new","cmd":"x","instances":2}`)).header.Get("Marathon-Deployment-Id")
	e.emu.Settle()
	if res := e.wait(dep); !res.Success {
		t.Errorf("result %+v", res)
	}
	if intField(e.app("/dev/new"), "tasksRunning") != 2 {
		t.Error("not scaled")
	}
}
