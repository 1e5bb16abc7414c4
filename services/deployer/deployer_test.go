package deployer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// TestDeploysOptedInAppsPinnedByDigest: a push reaches every app that runs
// the repository and opted in, pinned by digest; an app without the label,
// and an app whose policy declines, are left alone; the container keeps
// everything but the image.
func TestDeploysOptedInAppsPinnedByDigest(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", old, map[string]string{"slipway.policy": "all", "slipway.notify": "slack:#web"}),
		appJSON("/dev/web-canary", old, map[string]string{"slipway.policy": "patch"}),
		appJSON("/dev/web-pinned", old, nil),
	)
	e := newEnv(t, c)
	e.start(deployer.New())

	dig := digest("web-1.1.0")
	cause := e.push("apps/web", "1.1.0", dig, time.Now())
	succeeded := e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()

	want := registry + "/apps/web:1.1.0@" + dig
	if got := c.image(t, "/dev/web"); got != want {
		t.Errorf("/dev/web runs %s, want %s", got, want)
	}
	for _, id := range []string{"/dev/web-canary", "/dev/web-pinned"} {
		if got := c.image(t, id); got != old {
			t.Errorf("%s runs %s, want it untouched at %s", id, got, old)
		}
		if n := c.puts(id); n != 0 {
			t.Errorf("%s got %d PUTs, want none", id, n)
		}
	}
	if n := c.puts("/dev/web"); n != 1 {
		t.Errorf("/dev/web got %d PUTs, want 1", n)
	}
	if n := len(e.rec.Of(events.TypeDeploymentStarted)); n != 1 {
		t.Errorf("%d deployment.started, want 1", n)
	}
	d := deploymentOf(t, succeeded[0])
	if d.Cluster != "azure-int" || d.AppID != "/dev/web" || d.FromImage != old || d.ToImage != want ||
		d.Digest != dig || d.MarathonDeploymentID == "" || d.MarathonVersion == "" || d.Notify != "slack:#web" {
		t.Errorf("succeeded data: %+v", d)
	}
	if got := events.CausationOf(succeeded[0]); got != cause.ID() {
		t.Errorf("causationid = %q, want the push %q", got, cause.ID())
	}
	if succeeded[0].Subject() != "azure-int:/dev/web" {
		t.Errorf("subject = %q", succeeded[0].Subject())
	}
	assertContainerKept(t, c, "/dev/web")
}

// assertContainerKept checks that the update changed nothing but the image.
func assertContainerKept(t *testing.T, c *marathonCluster, id string) {
	t.Helper()
	raw, _ := c.emu.App(id)
	for _, want := range []string{`"portMappings"`, `"containerPort":8080`, `"hostPath":"/srv/data"`, `"log-driver"`, `"healthChecks"`} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).Match(raw) {
			t.Errorf("%s lost %s in the update: %s", id, want, raw)
		}
	}
}

// TestSameImageTwiceDeploysOnce: a second event for the same image (the
// promotion's and the target registry's own push both announce it) is
// one deployment.
func TestSameImageTwiceDeploysOnce(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "minor"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	dig := digest("1.0.1")
	e.push("apps/web", "1.0.1", dig, time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	// The same image announced by another event: the promotion that
	// copied it here.
	e.promote("apps/web", "1.0.1", dig)
	e.drained()
	if n := c.puts("/dev/web"); n != 1 {
		t.Errorf("%d PUTs, want 1", n)
	}
	if n := len(e.rec.Of(events.TypeDeploymentSucceeded)); n != 1 {
		t.Errorf("%d deployment.succeeded, want 1", n)
	}
}

// TestUnhealthyImageIsRolledBack: Marathon never finishes a deployment
// whose tasks stay unhealthy (marathon-api.md, "Deployments never fail by
// themselves"); after the timeout the deployer cancels it, Marathon rolls
// back, and the event says so.
func TestUnhealthyImageIsRolledBack(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{UnhealthyImages: regexp.MustCompile(`:2\.0\.0`)},
		appJSON("/dev/web", old, map[string]string{"slipway.policy": "major"}))
	e := newEnvWith(t, "deploy: { timeout: 500ms }", c)
	e.start(deployer.New())

	e.push("apps/web", "2.0.0", digest("2.0.0"), time.Now())
	failed := e.rec.Wait(t, events.TypeDeploymentFailed, 1)
	d := deploymentOf(t, failed[0])
	if !d.RolledBack || d.Reason != "not healthy after 500ms" {
		t.Errorf("failed data: %+v", d)
	}
	if got := c.image(t, "/dev/web"); got != old {
		t.Errorf("after the rollback the app runs %s, want %s", got, old)
	}
	if n := len(e.rec.Of(events.TypeDeploymentSucceeded)); n != 0 {
		t.Errorf("%d deployment.succeeded, want none", n)
	}
	var cancels int
	for _, r := range c.emu.Requests() {
		if r.Method == "DELETE" {
			cancels++
		}
	}
	if cancels != 1 {
		t.Errorf("%d DELETE /v2/deployments, want 1", cancels)
	}
	// The metric is counted right after the event is stored.
	testkit.WaitFor(t, "the rolled_back deployments metric", func() bool {
		return counter(t, e, "slipway_deployer_deployments_total", "rolled_back") == 1
	})
}

// counter reads a deployer counter by its outcome label (0 before it
// exists).
func counter(t *testing.T, e *env, name, outcome string) float64 {
	t.Helper()
	families, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestNoRollbackWhenDisabled: rollback: false leaves the failed deployment
// to the operator and says so.
func TestNoRollbackWhenDisabled(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{UnhealthyImages: regexp.MustCompile(`:2\.0\.0`)},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "major", "slipway.timeout": "300ms"}))
	e := newEnvWith(t, "deploy: { rollback: false }", c)
	e.start(deployer.New())
	e.push("apps/web", "2.0.0", digest("2.0.0"), time.Now())
	d := deploymentOf(t, e.rec.Wait(t, events.TypeDeploymentFailed, 1)[0])
	if d.RolledBack || d.Reason != "not healthy after 300ms" {
		t.Errorf("failed data: %+v (the app's slipway.timeout label must apply)", d)
	}
}

// TestLockedAppWaitsForTheRunningDeployment: Marathon answers 409 while
// another deployment holds the app (marathon-api.md, "409 app locked");
// the deployer waits for it and then updates.
func TestLockedAppWaitsForTheRunningDeployment(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 400 * time.Millisecond},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	// Somebody scales the app: a deployment that holds it for a while.
	putJSON(t, c.url+"/v2/apps/dev/web", `{"instances":3}`)
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	var locked int
	for _, r := range c.emu.Requests() {
		if r.Method == "PUT" && r.Status == 409 {
			locked++
		}
	}
	if locked == 0 {
		t.Error("the deployer's PUT never met the lock; the test proves nothing")
	}
	if got := c.image(t, "/dev/web"); got != registry+"/apps/web:1.1.0@"+digest("1.1.0") {
		t.Errorf("app runs %s", got)
	}
}

// TestCrashAfterPutResumes: a deployer that dies right after Marathon
// accepted its PUT leaves a record; the next one follows the same Marathon
// deployment instead of updating again, and each event is published once.
func TestCrashAfterPutResumes(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 200 * time.Millisecond},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.crashAfterPut(c, "1.1.0")

	e.start(deployer.New())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()
	if n := c.puts("/dev/web"); n != 1 {
		t.Errorf("%d PUTs, want 1", n)
	}
	if n := len(e.rec.Of(events.TypeDeploymentStarted)); n != 1 {
		t.Errorf("%d deployment.started, want 1", n)
	}
	if n := len(e.rec.Of(events.TypeDeploymentSucceeded)); n != 1 {
		t.Errorf("%d deployment.succeeded, want 1", n)
	}
}

// crashAfterPut runs a deployer that dies right after Marathon accepted
// its PUT of /dev/web to tag, before it recorded anything.
func (e *env) crashAfterPut(c *marathonCluster, tag string) {
	ctx, crash := context.WithCancel(context.Background())
	wait := e.startCtx(ctx, &deployer.Service{Hooks: &deployer.Hooks{AfterPut: func(string, string) { crash() }}})
	e.push("apps/web", tag, digest(tag), time.Now())
	testkit.WaitFor(e.t, "the PUT", func() bool { return c.puts("/dev/web") == 1 })
	wait()
}

// TestLateOlderPushIsIgnored: with a policy that does not order by version
// (force), an event pushed before what runs never replaces it.
func TestLateOlderPushIsIgnored(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:main-1", map[string]string{"slipway.policy": "force"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	now := time.Now()
	e.push("apps/web", "main-3", digest("main-3"), now)
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.push("apps/web", "main-2", digest("main-2"), now.Add(-time.Minute)) // late
	e.drained()
	if got := c.image(t, "/dev/web"); got != registry+"/apps/web:main-3@"+digest("main-3") {
		t.Errorf("app runs %s, want main-3 kept", got)
	}
	if n := c.puts("/dev/web"); n != 1 {
		t.Errorf("%d PUTs, want 1", n)
	}
}

// TestMarathonUnavailableBurst: 503s (no leader) are retried.
func TestMarathonUnavailableBurst(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	c.emu.Faults().FailNext(3, 503)
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
}

// TestEventStreamCutMidDeployment: Marathon's event stream has no resume
// (marathon-api.md, "Event stream"); the deployer must learn the outcome
// from /v2/deployments and the app after a cut.
func TestEventStreamCutMidDeployment(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 300 * time.Millisecond},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentStarted, 1)
	c.emu.Faults().CutEventStreams()
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
}

// TestDriftIsReported: an app changed by hand after Slipway deployed it
// yields one drift.detected.
func TestDriftIsReported(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)

	putJSON(t, c.url+"/v2/apps/dev/web?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+registry+`/apps/web:hotfix"}}}`)
	drift := e.rec.Wait(t, events.TypeDriftDetected, 1)
	d, err := events.DataAs[events.DriftDetected](drift[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.AppID != "/dev/web" || d.ActualImage != registry+"/apps/web:hotfix" || d.ExpectedImage != registry+"/apps/web:1.1.0@"+digest("1.1.0") {
		t.Errorf("drift: %+v", d)
	}
}

// TestTwoReplicasShareTheWork: two deployers on one durable consumer split
// the events between them; each app is still updated exactly once.
func TestTwoReplicasShareTheWork(t *testing.T) {
	const n = 6
	var apps []string
	for i := range n {
		apps = append(apps, appJSON(fmt.Sprintf("/dev/svc-%d", i), fmt.Sprintf("%s/apps/svc-%d:1.0.0", registry, i), map[string]string{"slipway.policy": "all"}))
	}
	// Two apps per image, so that replicas meet on the same repository.
	for i := range n {
		apps = append(apps, appJSON(fmt.Sprintf("/dev/svc-%d-b", i), fmt.Sprintf("%s/apps/svc-%d:1.0.0", registry, i), map[string]string{"slipway.policy": "all"}))
	}
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 50 * time.Millisecond}, apps...)
	e := newEnv(t, c)
	e.start(deployer.New())
	e.start(deployer.New())
	for i := range n {
		e.push(fmt.Sprintf("apps/svc-%d", i), "1.1.0", digest(fmt.Sprint(i)), time.Now())
		// The same images again through another event, racing the first.
		e.promote(fmt.Sprintf("apps/svc-%d", i), "1.1.0", digest(fmt.Sprint(i)))
	}
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 2*n)
	e.drained()
	for i := range n {
		for _, id := range []string{fmt.Sprintf("/dev/svc-%d", i), fmt.Sprintf("/dev/svc-%d-b", i)} {
			if p := c.puts(id); p != 1 {
				t.Errorf("%s got %d PUTs, want 1", id, p)
			}
		}
	}
	if got := len(e.rec.Of(events.TypeDeploymentSucceeded)); got != 2*n {
		t.Errorf("%d deployment.succeeded, want %d", got, 2*n)
	}
}

// TestNoDriftFromAStaleListing: the app listing a reconcile works from can
// be older than the inventory (a deployment ended while the listing was
// read); that is not somebody changing the app by hand.
func TestNoDriftFromAStaleListing(t *testing.T) {
	emu := emulator.New(emulator.Options{DeployDuration: 20 * time.Millisecond})
	if err := emu.Load([]byte("[" + appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}) + "]")); err != nil {
		t.Fatal(err)
	}
	var stale atomic.Pointer[[]byte]
	var staleServed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if body := stale.Load(); body != nil && r.Method == http.MethodGet && r.URL.Path == "/v2/apps" {
			staleServed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(*body)
			return
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); emu.Close() })
	resp, err := http.Get(srv.URL + "/v2/apps?embed=apps.deployments")
	if err != nil {
		t.Fatal(err)
	}
	before, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, &marathonCluster{name: "azure-int", emu: emu, url: srv.URL})
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)

	stale.Store(&before)
	testkit.WaitFor(t, "three reconciles from the stale listing", func() bool { return staleServed.Load() >= 3 })
	st, err := e.js.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter("slipway.drift.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 0 {
		t.Errorf("%d drift.detected from a listing older than the deployment", n)
	}
}

// TestResumedDeploymentDoesNotUndoANewerOne: a deployer dies right after
// its PUT of 1.1.0; before the event comes back, 1.2.0 is deployed (by
// another replica). The resumed 1.1.0 must not move the app back.
func TestResumedDeploymentDoesNotUndoANewerOne(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.crashAfterPut(c, "1.1.0")
	newer := registry + "/apps/web:1.2.0@" + digest("1.2.0")
	putJSON(t, c.url+"/v2/apps/dev/web?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+newer+`"}}}`)

	e.start(deployer.New())
	e.drained()
	if got := c.image(t, "/dev/web"); got != newer {
		t.Errorf("app runs %s, want %s kept", got, newer)
	}
	if n := c.puts("/dev/web"); n != 2 {
		t.Errorf("%d PUTs, want 2 (the crashed 1.1.0 and 1.2.0)", n)
	}
	if n := len(e.rec.Of(events.TypeDeploymentFailed)); n != 0 {
		t.Errorf("%d deployment.failed for a deployment nobody announced", n)
	}
}

// TestBusyAppIsWaitedForNotRedelivered: while another deployer holds the
// app's lease, the event waits in the handler: retrying by redelivery spent
// its deliveries and ended in the dead letters when the holder was slow.
func TestBusyAppIsWaitedForNotRedelivered(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())
	e.waitConsumers()
	locks, err := e.js.KeyValue(t.Context(), deployer.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := "lock." + inventory.Key("azure-int", "/dev/web")
	if _, err := locks.Create(t.Context(), key, []byte("another deployer")); err != nil {
		t.Fatal(err)
	}
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	cons, err := e.js.Consumer(t.Context(), bus.DefaultStream, deployer.ConsumerName("azure-int"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the event delivered", func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.Delivered.Stream > 0
	})
	if err := locks.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("delivered %d times (%d redelivered), want once", info.Delivered.Consumer, info.NumRedelivered)
	}
}

// TestRunFailsInsteadOfHanging: when the cluster's consumer cannot be
// opened (here: no such stream), Run returns the error; it used to wait
// for its own watch goroutines, which only the caller's cancel ends.
func TestRunFailsInsteadOfHanging(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{})
	e := newEnv(t, c)
	done := make(chan error, 1)
	go func() {
		done <- deployer.New().Run(t.Context(), app.Deps{
			Config: e.cfg, Log: slog.New(slog.DiscardHandler), JS: e.js, Stream: "NO-SUCH-STREAM",
			Metrics: prometheus.NewRegistry(), Health: health.NewChecker(),
		})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "NO-SUCH-STREAM") {
			t.Errorf("Run = %v, want the missing stream named", err)
		}
	case <-time.After(deadline):
		t.Fatal("Run did not return")
	}
}

// crashBefore runs a deployer that dies when a deployment of /dev/web to
// tag reaches phase ("following", "rolling-back"), recorded but not begun.
func (e *env) crashBefore(phase, tag string) {
	ctx, crash := context.WithCancel(context.Background())
	wait := e.startCtx(ctx, &deployer.Service{Hooks: &deployer.Hooks{BeforePhase: func(_, _, p string) {
		if p == phase {
			crash()
		}
	}}})
	e.push("apps/web", tag, digest(tag), time.Now())
	wait()
}

// pastDeadline waits until the deployment that started has passed its
// timeout: the situation of a deployer that comes back late.
func (e *env) pastDeadline(timeout time.Duration) {
	started := e.rec.Wait(e.t, events.TypeDeploymentStarted, 1)[0]
	testkit.WaitFor(e.t, "the deployment's deadline to pass", func() bool { return time.Since(started.Time()) > timeout })
}

// settled waits until the app runs image healthy, with no deployment in
// progress.
func (m *marathonCluster) settled(t *testing.T, id, image string) {
	t.Helper()
	testkit.WaitFor(t, id+" running "+image+" healthy", func() bool {
		raw, _ := m.emu.App(id)
		var a marathon.App
		return json.Unmarshal(raw, &a) == nil && a.Image() == image && len(a.Deployments) == 0 &&
			a.TasksRunning == a.Instances && a.TasksHealthy == a.Instances
	})
}

// TestLateResumeOfAStillRunningDeploymentRollsBack: a deployer dies while
// Marathon deploys an image that never gets healthy, and is back after the
// deadline: the deployment still runs, so it failed; it is rolled back.
func TestLateResumeOfAStillRunningDeploymentRollsBack(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{UnhealthyImages: regexp.MustCompile(`:2\.0\.0`)},
		appJSON("/dev/web", old, map[string]string{"slipway.policy": "major"}))
	e := newEnvWith(t, "deploy: { timeout: 300ms }", c)
	e.crashBefore("following", "2.0.0")
	e.pastDeadline(300 * time.Millisecond)

	e.start(deployer.New())
	d := deploymentOf(t, e.rec.Wait(t, events.TypeDeploymentFailed, 1)[0])
	if !d.RolledBack || d.Reason != "not healthy after 300ms" || d.Superseded {
		t.Errorf("failed data: %+v", d)
	}
	if got := c.image(t, "/dev/web"); got != old {
		t.Errorf("after the rollback the app runs %s, want %s", got, old)
	}
}

// TestResumedRollbackKeepsARecoveredRelease: a slow deployment passes its
// deadline, the deployer decides to roll it back and dies before it does;
// by the time it is back the release runs healthy. What the app runs now
// decides: it is announced deployed, not put back.
func TestResumedRollbackKeepsARecoveredRelease(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 1500 * time.Millisecond},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnvWith(t, "deploy: { timeout: 300ms }", c)
	e.crashBefore("rolling-back", "1.1.0")
	want := registry + "/apps/web:1.1.0@" + digest("1.1.0")
	c.settled(t, "/dev/web", want)

	e.start(deployer.New())
	e.drained()
	for _, f := range e.rec.Of(events.TypeDeploymentFailed) {
		t.Errorf("deployment.failed for a release that runs healthy: %+v", deploymentOf(t, f))
	}
	if n := len(e.rec.Of(events.TypeDeploymentSucceeded)); n != 1 {
		t.Errorf("%d deployment.succeeded, want 1", n)
	}
	if got := c.image(t, "/dev/web"); got != want {
		t.Errorf("app runs %s, want %s kept", got, want)
	}
	// A cancel that finds the deployment over (404) undoes nothing.
	for _, r := range c.emu.Requests() {
		if (r.Method == http.MethodDelete && r.Status < 300) || (r.Method == http.MethodPut && strings.Contains(r.Query, "force=true")) {
			t.Errorf("%s %s?%s (%d): a healthy release was rolled back", r.Method, r.Path, r.Query, r.Status)
		}
	}
}

// TestSupersededDeploymentNamesTheNewerImage: a deployer dies while Marathon
// deploys 1.1.0 (announced); 1.2.0 is deployed over it meanwhile (by
// another replica). The resumed deployment leaves 1.2.0 alone and ends
// deployment.failed with superseded and the newer image, counted apart
// from failures.
func TestSupersededDeploymentNamesTheNewerImage(t *testing.T) {
	c := newCluster(t, "azure-int", emulator.Options{DeployDuration: 200 * time.Millisecond},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.crashBefore("following", "1.1.0")
	newer := registry + "/apps/web:1.2.0@" + digest("1.2.0")
	putJSON(t, c.url+"/v2/apps/dev/web?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+newer+`"}}}`)

	e.start(deployer.New())
	d := deploymentOf(t, e.rec.Wait(t, events.TypeDeploymentFailed, 1)[0])
	if !d.Superseded || d.SupersededBy != newer || d.RolledBack || !strings.HasPrefix(d.Reason, "superseded: ") {
		t.Errorf("failed data: %+v", d)
	}
	e.drained()
	if got := c.image(t, "/dev/web"); got != newer {
		t.Errorf("app runs %s, want %s kept", got, newer)
	}
	testkit.WaitFor(t, "the superseded deployments metric", func() bool {
		return counter(t, e, "slipway_deployer_deployments_total", "superseded") == 1
	})
	if n := counter(t, e, "slipway_deployer_deployments_total", "failed"); n != 0 {
		t.Errorf("%v deployments counted failed", n)
	}
}
