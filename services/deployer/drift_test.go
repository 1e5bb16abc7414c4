package deployer_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// listedCluster is an emulated Marathon that counts its full app listings:
// each reconcile pass makes one, so a test waits for passes instead of time.
type listedCluster struct {
	*marathonCluster
	listings atomic.Int64
}

func newListedCluster(t *testing.T, apps ...string) *listedCluster {
	t.Helper()
	emu := emulator.New(emulator.Options{DeployDuration: 20 * time.Millisecond})
	if err := emu.Load([]byte("[" + strings.Join(apps, ",") + "]")); err != nil {
		t.Fatal(err)
	}
	c := &listedCluster{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v2/apps" {
			c.listings.Add(1)
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); emu.Close() })
	c.marathonCluster = &marathonCluster{name: "azure-int", emu: emu, url: srv.URL}
	return c
}

// passes waits until the deployer has listed the cluster n more times.
func (c *listedCluster) passes(t *testing.T, n int64) {
	t.Helper()
	from := c.listings.Load()
	testkit.WaitFor(t, "more reconcile passes", func() bool { return c.listings.Load() >= from+n })
}

// waitDrift waits for a drift.detected whose data satisfies ok.
func waitDrift(t *testing.T, e *env, what string, ok func(events.DriftDetected) bool) events.DriftDetected {
	t.Helper()
	var found events.DriftDetected
	testkit.WaitFor(t, what, func() bool {
		for _, ev := range e.rec.Of(events.TypeDriftDetected) {
			if d, err := events.DataAs[events.DriftDetected](ev); err == nil && ok(d) {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

// drifts returns the data of every drift.detected recorded.
func drifts(t *testing.T, e *env) []events.DriftDetected {
	t.Helper()
	var out []events.DriftDetected
	for _, ev := range e.rec.Of(events.TypeDriftDetected) {
		d, err := events.DataAs[events.DriftDetected](ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// inventoryRecord reads the workload's inventory record now.
func inventoryRecord(t *testing.T, e *env, cluster, id string) (inventory.Record, bool) {
	t.Helper()
	inv, err := inventory.Bind(t.Context(), e.js)
	if err != nil {
		return inventory.Record{}, false
	}
	r, ok, err := inv.Get(t.Context(), cluster, id)
	if err != nil {
		t.Fatal(err)
	}
	return r, ok
}

func deleteApp(t *testing.T, url string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("DELETE %s: %d", url, resp.StatusCode)
	}
}

func setImage(t *testing.T, c *marathonCluster, id, image string) {
	t.Helper()
	putJSON(t, c.url+"/v2/apps"+id+"?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+image+`"}}}`)
}

// An app Slipway manages changed by hand to any other image is drift,
// whatever the image: reported once with the actual image, the inventory
// keeping the expected one, flagged. The next push retakes it only when it
// still runs the pushed repository and its policy accepts the push against
// what it runs now.
func TestChangeByHandToAnyImageIsDrift(t *testing.T) {
	const tstRegistry = "registry.tst.example:5000"
	expected := registry + "/apps/web:1.0.0"
	cases := []struct {
		name, actual string
		retaken      bool
		// runs is the digest the inventory records the app runs: the
		// pinned one; a tag of a registry nobody reaches (or configured)
		// leaves it unknown.
		runs string
	}{
		{"another tag: retaken by a push its policy accepts", registry + "/apps/web:1.0.5", true, ""},
		{"another repository: not retaken by its old repository", registry + "/apps/other:1.0.0", false, ""},
		{"another registry: not retaken", "nginx:1.27", false, ""},
		{"another environment's registry: not retaken", tstRegistry + "/apps/web:1.0.0", false, ""},
		{"a bare digest: not retaken by a version policy", registry + "/apps/web@" + digest("by-hand"), false, digest("by-hand")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newListedCluster(t, appJSON("/dev/web", expected, map[string]string{"slipway.policy": "all"}))
			e := newEnv(t, c.marathonCluster)
			e.start(deployer.New())
			testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, e, "azure-int", "/dev/web", expected) })

			setImage(t, c.marathonCluster, "/dev/web", tc.actual)
			d := waitDrift(t, e, "drift to "+tc.actual, func(d events.DriftDetected) bool { return d.ActualImage == tc.actual })
			if d.AppID != "/dev/web" || d.ExpectedImage != expected || d.Unmanaged || d.Platform != "marathon" || d.Reason == "" {
				t.Errorf("drift data: %+v", d)
			}
			// The event is announced before the record is flagged (a crash
			// between them then announces again rather than never).
			testkit.WaitFor(t, "the drift flagged in the inventory", func() bool {
				r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
				return r.Drift != ""
			})
			if r, _ := inventoryRecord(t, e, "azure-int", "/dev/web"); r.Image != expected || r.Drift != tc.actual || r.DriftDigest != tc.runs {
				t.Errorf("inventory: image %s, drift %q (digest %q); want %s flagged with %s (digest %q)",
					r.Image, r.Drift, r.DriftDigest, expected, tc.actual, tc.runs)
			}
			c.passes(t, 3)
			if n := len(drifts(t, e)); n != 1 {
				t.Errorf("%d drift.detected, want 1", n)
			}

			e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
			if tc.retaken {
				e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
				want := registry + "/apps/web:1.1.0@" + digest("1.1.0")
				testkit.WaitFor(t, "the deployed image in the inventory, unflagged", func() bool {
					r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
					return r.Image == want && r.Drift == ""
				})
				return
			}
			e.drained()
			if n := len(e.rec.Of(events.TypeDeploymentStarted)); n != 0 {
				t.Errorf("%d deployment.started: the app moved by hand was retaken", n)
			}
			if got := c.image(t, "/dev/web"); got != tc.actual {
				t.Errorf("app runs %s, want %s left as the person put it", got, tc.actual)
			}
			c.passes(t, 2)
			if r, _ := inventoryRecord(t, e, "azure-int", "/dev/web"); r.Image != expected || r.Drift != tc.actual {
				t.Errorf("inventory after the push: image %s, drift %q; want still flagged", r.Image, r.Drift)
			}
		})
	}
}

// An app moved by hand to a tag alone of a configured registry (here
// another environment's) records the digest that tag stands for, asked of
// that registry: `slipway where` finds the app where it runs by hand.
// Putting the expected image back clears it with the drift.
func TestDriftToATagRecordsTheDigestTheTagRuns(t *testing.T) {
	dev := testkit.NewRegistry(t, testkit.RegistryOptions{})
	ci := testkit.NewRegistry(t, testkit.RegistryOptions{})
	expected := dev.Host + "/apps/web:1.0.0"
	pushBuilt(t, expected, time.Now())
	actual := ci.Host + "/tools/debug:latest"
	runs := pushBuilt(t, actual, time.Now())

	c := newListedCluster(t, appJSON("/dev/web", expected, map[string]string{"slipway.policy": "all"}))
	e := newComplianceEnv(t, dev.Host, ci.Host, "", c.marathonCluster)
	e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, e.env, "azure-int", "/dev/web", expected) })

	setImage(t, c.marathonCluster, "/dev/web", actual)
	waitDrift(t, e.env, "drift to "+actual, func(d events.DriftDetected) bool { return d.ActualImage == actual })
	var r inventory.Record
	testkit.WaitFor(t, "the drift in the inventory", func() bool { // written once it was announced
		r, _ = inventoryRecord(t, e.env, "azure-int", "/dev/web")
		return r.Drift != ""
	})
	if r.Drift != actual || r.DriftDigest != runs || r.Image != expected || r.Digest == runs {
		t.Errorf("inventory: image %s (digest %s), drift %s (digest %q); want %s kept, drift %s running %s",
			r.Image, r.Digest, r.Drift, r.DriftDigest, expected, actual, runs)
	}

	setImage(t, c.marathonCluster, "/dev/web", expected)
	testkit.WaitFor(t, "the drift and its digest cleared", func() bool {
		r, _ := inventoryRecord(t, e.env, "azure-int", "/dev/web")
		return r.Image == expected && r.Drift == "" && r.DriftDigest == ""
	})
}

// Putting the expected image back by hand clears the drift flag.
func TestDriftClearsWhenTheExpectedImageRunsAgain(t *testing.T) {
	expected := registry + "/apps/web:1.0.0"
	c := newListedCluster(t, appJSON("/dev/web", expected, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c.marathonCluster)
	e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, e, "azure-int", "/dev/web", expected) })

	setImage(t, c.marathonCluster, "/dev/web", "nginx:1.27")
	waitDrift(t, e, "drift to nginx", func(d events.DriftDetected) bool { return d.ActualImage == "nginx:1.27" })
	setImage(t, c.marathonCluster, "/dev/web", expected)
	testkit.WaitFor(t, "the drift flag cleared", func() bool {
		r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
		return r.Image == expected && r.Drift == ""
	})
}

// An app that loses its slipway.policy label is reported once as leaving
// management; its record stays, flagged; pushes no longer reach it; the
// label back clears the flag without a new report when it runs what was
// expected.
func TestAppLosingItsLabelIsReportedOnceAsLeavingManagement(t *testing.T) {
	expected := registry + "/apps/web:1.0.0"
	c := newListedCluster(t, appJSON("/dev/web", expected, map[string]string{"slipway.policy": "all", "team": "web"}))
	e := newEnv(t, c.marathonCluster)
	e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, e, "azure-int", "/dev/web", expected) })

	putJSON(t, c.url+"/v2/apps/dev/web?force=true", `{"labels":{"team":"web"}}`)
	d := waitDrift(t, e, "leaving management", func(d events.DriftDetected) bool { return d.Unmanaged })
	if d.AppID != "/dev/web" || d.ExpectedImage != expected || d.ActualImage != expected || !strings.Contains(d.Reason, "label") {
		t.Errorf("drift data: %+v", d)
	}
	testkit.WaitFor(t, "the departure flagged in the inventory", func() bool {
		r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
		return r.LeftManagement != ""
	})
	if r, _ := inventoryRecord(t, e, "azure-int", "/dev/web"); r.LeftManagement != "unlabelled" || r.Image != expected {
		t.Errorf("inventory: %+v, want kept, flagged unlabelled", r)
	}
	c.passes(t, 3)
	if n := len(drifts(t, e)); n != 1 {
		t.Errorf("%d drift.detected, want 1", n)
	}
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.drained()
	if n := c.puts("/dev/web"); n != 1 {
		t.Errorf("%d PUTs, want only the one removing the label", n)
	}

	putJSON(t, c.url+"/v2/apps/dev/web?force=true", `{"labels":{"team":"web","slipway.policy":"all"}}`)
	testkit.WaitFor(t, "the flag cleared", func() bool {
		r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
		return r.LeftManagement == "" && r.Drift == ""
	})
	c.passes(t, 2)
	if n := len(drifts(t, e)); n != 1 {
		t.Errorf("%d drift.detected after the label came back on the expected image, want still 1", n)
	}
}

// A removed app is reported once as leaving management and its record kept,
// flagged; an app created again under its id on another image is drift.
func TestRemovedAppIsReportedOnceAndItsReturnJudged(t *testing.T) {
	expected := registry + "/apps/web:1.0.0"
	c := newListedCluster(t, appJSON("/dev/web", expected, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c.marathonCluster)
	e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, e, "azure-int", "/dev/web", expected) })

	deleteApp(t, c.url+"/v2/apps/dev/web")
	d := waitDrift(t, e, "removal reported", func(d events.DriftDetected) bool { return d.Unmanaged })
	if d.AppID != "/dev/web" || d.ExpectedImage != expected || d.ActualImage != "" || !strings.Contains(d.Reason, "removed") {
		t.Errorf("drift data: %+v", d)
	}
	testkit.WaitFor(t, "the removal flagged in the inventory", func() bool {
		r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
		return r.LeftManagement != ""
	})
	if r, ok := inventoryRecord(t, e, "azure-int", "/dev/web"); !ok || r.LeftManagement != "removed" {
		t.Errorf("inventory: %+v (present %v), want kept, flagged removed", r, ok)
	}
	c.passes(t, 3)
	if n := len(drifts(t, e)); n != 1 {
		t.Errorf("%d drift.detected, want 1", n)
	}

	if err := c.emu.Load([]byte("[" + appJSON("/dev/web", "nginx:1.27", map[string]string{"slipway.policy": "all"}) + "]")); err != nil {
		t.Fatal(err)
	}
	waitDrift(t, e, "the app back on nginx is drift", func(d events.DriftDetected) bool { return d.ActualImage == "nginx:1.27" && !d.Unmanaged })
	testkit.WaitFor(t, "the record flagged with the drift, no longer removed", func() bool {
		r, _ := inventoryRecord(t, e, "azure-int", "/dev/web")
		return r.Drift == "nginx:1.27" && r.LeftManagement == "" && r.Image == expected
	})
}

// A labelled app of another registry that this cluster never managed is
// another environment's on the same Marathon: never recorded, never drift.
func TestLabelledAppOfAnotherRegistryNeverManagedIsLeftAlone(t *testing.T) {
	c := newListedCluster(t,
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}),
		appJSON("/tst/web", "registry.tst.example:5000/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c.marathonCluster)
	e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, e, "azure-int", "/dev/web", registry+"/apps/web:1.0.0") })
	setImage(t, c.marathonCluster, "/tst/web", "registry.tst.example:5000/apps/web:2.0.0")
	c.passes(t, 3)
	if _, ok := inventoryRecord(t, e, "azure-int", "/tst/web"); ok {
		t.Error("the other environment's app is in this cluster's inventory")
	}
	if n := len(drifts(t, e)); n != 0 {
		t.Errorf("%d drift.detected, want none: %+v", n, drifts(t, e))
	}
}
