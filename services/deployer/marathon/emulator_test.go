package marathon

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

const emuApps = `[
  {"id": "/dev/payments", "instances": 2, "cpus": 0.1, "mem": 64,
   "labels": {"slipway.policy": "minor"},
   "env": {"MODE": "prod"},
   "container": {"type": "DOCKER",
     "docker": {"image": "registry.dev:5000/apps/payments:1.2.3", "forcePullImage": true,
       "parameters": [{"key": "log-driver", "value": "journald"}]},
     "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp", "name": "http", "labels": {"VIP_0": "/payments:8080"}}],
     "volumes": [{"containerPath": "/data", "hostPath": "/mnt/data", "mode": "RW"}]},
   "networks": [{"mode": "container/bridge"}],
   "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0}]},
  {"id": "/dev/web", "instances": 1, "cpus": 0.1, "mem": 32, "cmd": "sleep 100000"}
]`

func startEmulator(t *testing.T, opts emulator.Options) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	emu := emulator.New(opts)
	if err := emu.Load([]byte(emuApps)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	return emu, srv
}

func emuClient(t *testing.T, url string, auth config.MarathonAuth, opts ...Option) *Client {
	t.Helper()
	c, err := New("emu", config.Marathon{URL: url, Auth: auth},
		append([]Option{WithLogger(testLogger(t)), WithRetry(5, time.Millisecond),
			WithReconnectBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitDeployment reads events until the deployment with id ends.
func waitDeployment(t *testing.T, next func() Event, id string) (string, DeploymentEvent) {
	t.Helper()
	for {
		ev := next()
		if ev.Type != "deployment_success" && ev.Type != "deployment_failed" {
			continue
		}
		d, err := ev.Deployment()
		if err != nil {
			t.Fatal(err)
		}
		if d.ID == id {
			return ev.Type, d
		}
	}
}

func TestEmulatorImageUpdate(t *testing.T) {
	emu, srv := startEmulator(t, emulator.Options{DeployDuration: 50 * time.Millisecond})
	c := emuClient(t, srv.URL, config.MarathonAuth{None: true})
	ctx := ctxT(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	apps, err := c.ListApps(ctx)
	if err != nil || len(apps) != 2 {
		t.Fatalf("apps = %v, %v", apps, err)
	}
	next, _ := follow(t, c, "deployment_success", "deployment_failed")
	if ev := next(); ev.Type != EventStreamAttached {
		t.Fatalf("first event = %s", ev.Type)
	}

	app, err := c.GetApp(ctx, "/dev/payments")
	if err != nil {
		t.Fatal(err)
	}
	if app.Image() != "registry.dev:5000/apps/payments:1.2.3" || app.Labels["slipway.policy"] != "minor" || app.Version == "" {
		t.Fatalf("app = %+v", app)
	}
	container, err := WithImage(app.Container, "registry.dev:5000/apps/payments:1.3.0")
	if err != nil {
		t.Fatal(err)
	}
	emu.ClearRequests()
	ref, err := c.UpdateApp(ctx, app.ID, map[string]json.RawMessage{"container": container}, false)
	if err != nil {
		t.Fatal(err)
	}
	reqs := emu.Requests()
	if len(reqs) != 1 || reqs[0].Method != "PUT" || reqs[0].Path != "/v2/apps/dev/payments" || reqs[0].Query != "force=false" {
		t.Fatalf("requests = %+v", reqs)
	}
	var body map[string]json.RawMessage
	mustUnmarshal(t, reqs[0].Body, &body)
	if !slices.Equal(keys(body), []string{"container"}) {
		t.Fatalf("PUT body fields = %v", keys(body))
	}

	if typ, d := waitDeployment(t, next, ref.DeploymentID); typ != "deployment_success" || d.Plan.Version != ref.Version {
		t.Fatalf("deployment ended %s: %+v (ref %+v)", typ, d, ref)
	}
	after, err := c.GetApp(ctx, "/dev/payments")
	if err != nil {
		t.Fatal(err)
	}
	if after.Image() != "registry.dev:5000/apps/payments:1.3.0" || after.Version != ref.Version || len(after.Deployments) != 0 {
		t.Fatalf("after = %+v", after)
	}
	// Everything but the image is as it was, including what the client
	// does not model.
	want, _ := WithImage(app.Container, "registry.dev:5000/apps/payments:1.3.0")
	assertSameJSON(t, "container", after.Container, want)
	raw, _ := emu.App("/dev/payments")
	var full map[string]json.RawMessage
	mustUnmarshal(t, string(raw), &full)
	assertSameJSON(t, "env", full["env"], json.RawMessage(`{"MODE":"prod"}`))
	if !strings.Contains(string(full["healthChecks"]), "/health") {
		t.Errorf("health checks lost: %s", full["healthChecks"])
	}
}

func TestEmulatorLockedAppCancelAndRollback(t *testing.T) {
	_, srv := startEmulator(t, emulator.Options{DeployDuration: 50 * time.Millisecond, UnhealthyImages: regexp.MustCompile(`:broken$`)})
	c := emuClient(t, srv.URL+"/service/marathon", config.MarathonAuth{})
	ctx := ctxT(t)
	next, _ := follow(t, c, "deployment_success", "deployment_failed")
	next() // attached

	app, err := c.GetApp(ctx, "dev/payments")
	if err != nil {
		t.Fatal(err)
	}
	broken, _ := WithImage(app.Container, "registry.dev:5000/apps/payments:broken")
	ref, err := c.UpdateApp(ctx, app.ID, map[string]json.RawMessage{"container": broken}, false)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := c.Deployments(ctx)
	if err != nil || len(deps) != 1 || deps[0].ID != ref.DeploymentID || !slices.Contains(deps[0].AffectedApps, "/dev/payments") {
		t.Fatalf("deployments = %+v, %v", deps, err)
	}
	locked, err := c.GetApp(ctx, app.ID)
	if err != nil || len(locked.Deployments) != 1 || locked.Deployments[0].ID != ref.DeploymentID {
		t.Fatalf("app deployments = %+v, %v", locked.Deployments, err)
	}

	// A second change without force is refused while the first runs.
	fixed, _ := WithImage(app.Container, "registry.dev:5000/apps/payments:1.2.4")
	_, err = c.UpdateApp(ctx, app.ID, map[string]json.RawMessage{"container": fixed}, false)
	if ids, ok := LockedBy(err); !ok || !slices.Equal(ids, []string{ref.DeploymentID}) {
		t.Fatalf("LockedBy(%v) = %v, %v", err, ids, ok)
	}

	// The deployment never finishes by itself; cancelling rolls back.
	rb, err := c.CancelDeployment(ctx, ref.DeploymentID, false)
	if err != nil || rb.DeploymentID == "" || rb.DeploymentID == ref.DeploymentID {
		t.Fatalf("cancel = %+v, %v", rb, err)
	}
	typ, d := waitDeployment(t, next, ref.DeploymentID)
	if typ != "deployment_failed" || d.Reason != "The upgrade has been cancelled" {
		t.Fatalf("cancelled deployment ended %s (%q)", typ, d.Reason)
	}
	if typ, _ := waitDeployment(t, next, rb.DeploymentID); typ != "deployment_success" {
		t.Fatalf("rollback ended %s", typ)
	}
	after, err := c.GetApp(ctx, app.ID)
	if err != nil || after.Image() != app.Image() {
		t.Fatalf("after rollback image = %q, %v", after.Image(), err)
	}
	if _, err := c.CancelDeployment(ctx, ref.DeploymentID, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel of an ended deployment: %v", err)
	}

	// force overrides the lock; the overridden deployment fails.
	ref, err = c.UpdateApp(ctx, app.ID, map[string]json.RawMessage{"container": broken}, false)
	if err != nil {
		t.Fatal(err)
	}
	forced, err := c.UpdateApp(ctx, app.ID, map[string]json.RawMessage{"container": fixed}, true)
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := waitDeployment(t, next, ref.DeploymentID); typ != "deployment_failed" {
		t.Fatalf("overridden deployment ended %s", typ)
	}
	if typ, _ := waitDeployment(t, next, forced.DeploymentID); typ != "deployment_success" {
		t.Fatalf("forced deployment ended %s", typ)
	}

	if _, err := c.GetApp(ctx, "/dev/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
}

func TestEmulatorFaults(t *testing.T) {
	emu, srv := startEmulator(t, emulator.Options{DeployDuration: 10 * time.Millisecond})
	c := emuClient(t, srv.URL, config.MarathonAuth{})
	ctx := ctxT(t)

	emu.Faults().FailNext(3, 503)
	if _, err := c.ListApps(ctx); err != nil {
		t.Fatalf("GET after a 503 burst: %v", err)
	}
	emu.Faults().FailNext(2, 503)
	emu.ClearRequests()
	if _, err := c.UpdateApp(ctx, "/dev/web", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, true); err != nil {
		t.Fatalf("PUT after a 503 burst: %v", err)
	}
	if n := len(emu.Requests()); n != 3 {
		t.Errorf("%d PUTs, want 3", n)
	}

	emu.Faults().FailNext(1, 500)
	emu.ClearRequests()
	_, err := c.UpdateApp(ctx, "/dev/web", map[string]json.RawMessage{"instances": json.RawMessage(`3`)}, true)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 {
		t.Fatalf("err = %v", err)
	}
	if n := len(emu.Requests()); n != 1 {
		t.Errorf("a PUT answered 500 was sent %d times", n)
	}
	emu.Faults().Clear()
}

func TestEmulatorEventStreamReconnects(t *testing.T) {
	const timeout = 100 * time.Millisecond
	emu, srv := startEmulator(t, emulator.Options{Heartbeat: timeout / 5, DeployDuration: time.Millisecond})
	c := emuClient(t, srv.URL, config.MarathonAuth{}, WithHeartbeatTimeout(timeout))
	next, _ := follow(t, c, "deployment_success")
	if ev := next(); ev.Type != EventStreamAttached {
		t.Fatalf("event = %s", ev.Type)
	}
	emu.Faults().RefuseEventStreams(2)
	emu.Faults().CutEventStreams()
	if ev := next(); ev.Type != EventStreamAttached {
		t.Fatalf("after the cut: %s", ev.Type)
	}

	// The emulator's heartbeats ("\r" and "\n" flushed apart) keep the
	// stream open for many heartbeat timeouts: no further attach.
	hold := time.NewTimer(5 * timeout)
	<-hold.C
	ref, err := c.UpdateApp(ctxT(t), "/dev/web", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, false)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev := next()
		if ev.Type == EventStreamAttached {
			t.Fatalf("the stream was reopened despite heartbeats: %s", ev.Data)
		}
		if d, err := ev.Deployment(); err == nil && d.ID == ref.DeploymentID {
			break
		}
	}
}

func TestEmulatorBasicAuth(t *testing.T) {
	_, srv := startEmulator(t, emulator.Options{BasicAuth: &[2]string{"deployer", "pw-123"}})
	ok := emuClient(t, srv.URL, config.MarathonAuth{Basic: &config.BasicAuth{Username: "deployer", Password: "pw-123"}})
	if _, err := ok.ListApps(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	bad := emuClient(t, srv.URL, config.MarathonAuth{Basic: &config.BasicAuth{Username: "deployer", Password: "nope-456"}})
	_, err := bad.ListApps(ctxT(t))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || strings.Contains(err.Error(), "nope-456") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmulatorDCOSServiceAccount(t *testing.T) {
	var skew atomic.Int64 // how far the emulated cluster's clock is ahead
	emu, srv := startEmulator(t, emulator.Options{DCOSPublicKey: &testKey().PublicKey, DCOSUID: "slipway", TokenTTL: time.Minute,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	c := emuClient(t, srv.URL+"/service/marathon", config.MarathonAuth{DCOS: &config.DCOSAuth{UID: "slipway", PrivateKeyFile: writeKey(t, "pkcs8")}})
	ctx := ctxT(t)
	if _, err := c.ListApps(ctx); err != nil {
		t.Fatal(err)
	}
	next, _ := follow(t, c)
	if ev := next(); ev.Type != EventStreamAttached {
		t.Fatalf("event = %s", ev.Type)
	}

	// The cluster's clock runs past the token's minute while the client
	// still trusts it: Admin Router answers 401, the client logs in again
	// (its login JWT is still valid on the cluster's clock) and retries.
	skew.Store(int64(2 * time.Minute))
	if _, err := c.UpdateApp(ctx, "/dev/web", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, false); err != nil {
		t.Fatal(err)
	}
	var logins, puts []int
	for _, r := range emu.Requests() {
		switch {
		case r.Path == "/acs/api/v1/auth/login":
			logins = append(logins, r.Status)
		case r.Method == "PUT":
			puts = append(puts, r.Status)
		}
	}
	if !slices.Equal(logins, []int{200, 200}) || !slices.Equal(puts, []int{401, 200}) {
		t.Errorf("logins %v, PUTs %v; want two good logins and a PUT retried after its 401", logins, puts)
	}

	wrong, err := New("emu", config.Marathon{URL: srv.URL + "/service/marathon",
		Auth: config.MarathonAuth{DCOS: &config.DCOSAuth{UID: "someone-else", PrivateKeyFile: writeKey(t, "pkcs1")}}}, WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Ping(ctx); err == nil || !strings.Contains(err.Error(), "DC/OS login") {
		t.Fatalf("unknown account: %v", err)
	}
}
