package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
)

// syncBuffer is a buffer written and read concurrently that wakes those
// waiting for what it holds.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
	ended   bool // nothing more will be written
}

// end says that nothing more will be written.
func (w *syncBuffer) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	close(w.changed)
	w.changed = make(chan struct{})
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the text matches re and returns the match, failing
// the test after a minute or once nothing more can come.
func (w *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		m := re.FindString(w.buf.String())
		ch, ended := w.changed, w.ended
		w.mu.Unlock()
		if m != "" {
			return m
		}
		if ended {
			t.Fatalf("the output ended without matching %s", re)
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the output never matched %s", re)
		}
	}
}

// demoRun is a demo played in the background for a test.
type demoRun struct {
	out, logs *syncBuffer
	cancel    context.CancelFunc
	done      chan struct{}
	res       *demoResult
	err       error
}

// fastDemo are the options of a demo under test: free ports, fast
// deployments, no pause before the prd approval.
func fastDemo() demoOptions {
	return demoOptions{
		IngestListen:   "127.0.0.1:0",
		ConsoleListen:  "127.0.0.1:0",
		DeployDuration: 50 * time.Millisecond,
		BrokenTimeout:  time.Second,
		StepTimeout:    2 * time.Minute,
	}
}

// playDemo plays the demo with opts (its log at warn level into logs)
// until stop, or the test's end.
func playDemo(t *testing.T, opts demoOptions) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	d := &demoRun{out: newSyncBuffer(), logs: newSyncBuffer(), cancel: cancel, done: make(chan struct{})}
	opts.Log, opts.LogLevel = d.logs, slog.LevelWarn
	go func() {
		defer close(d.done)
		defer d.out.end()
		d.res, d.err = runDemo(ctx, d.out, opts)
	}()
	t.Cleanup(func() { d.stop() })
	return d
}

// stop interrupts the demo (Ctrl-C) and waits for it to end.
func (d *demoRun) stop() (*demoResult, error) {
	d.cancel()
	<-d.done
	return d.res, d.err
}

// TestDemo plays `slipway demo` headless, with no pauses and fast
// deployments: the release reaches prd after the approval, the broken image
// is rolled back, every app ends on the release, the team's Slack channels
// hear of it, and every event carries its trace. Then, as a person would,
// it runs the printed crane and curl commands as they are, in sh and in
// bash: the pushed image arrives, the hand-made change shows as drift. The
// demo stops cleanly when interrupted.
func TestDemo(t *testing.T) {
	d := playDemo(t, fastDemo())
	out := d.out
	defer func() {
		_, err := d.stop()
		t.Logf("output:\n%s\nlog:\n%s\nerror: %v", out, d.logs, err)
	}()
	out.waitFor(t, regexp.MustCompile(`Ctrl-C stops everything`))

	// The console is served, open to anyone, and shows the sample app.
	consoleURL := regexp.MustCompile(`console +(http://\S+)`).FindStringSubmatch(out.String())
	if consoleURL == nil {
		t.Fatal("the demo did not print the console's URL")
	}
	resp, gerr := http.Get(consoleURL[1])
	if gerr != nil {
		t.Fatal(gerr)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), demoRepo) {
		t.Errorf("GET %s: %s, want 200 with the release matrix naming %s:\n%.2000s", consoleURL[1], resp.Status, demoRepo, page)
	}

	// The notifier posts to Slack: approvals and promotions to the release
	// channel, every deployment to the team's (the apps' slipway.notify
	// label).
	for _, want := range []string{
		`→ #releases: approval requested: apps/web 1.4.0 → prd`,
		`→ #releases: apps/web 1.4.0 approved for prd by release-manager`,
		`→ #web-team: apps/web 1.4.0 deployed on azure-int: /dev/web`,
		`→ #web-team: apps/web 1.4.0 deployed on azure-int-tst: /tst/web`,
		`→ #web-team: apps/web 1.4.0 deployed on vsphere-prd: /prd/web`,
		`→ #web-team: rolled back on azure-int: /dev/web`,
	} {
		out.waitFor(t, regexp.MustCompile(regexp.QuoteMeta(want)))
	}

	// The printed commands, run as printed.
	root, _ := filepath.Abs(repoRoot)
	crane := goBuild(t, "github.com/google/go-containerregistry/cmd/crane")
	craneCmd := strings.TrimSpace(out.waitFor(t, regexp.MustCompile(`(?m)^  tar .*crane append .*$`)))
	for _, shell := range []string{"sh", "bash"} {
		runShell(t, shell, root, crane, craneCmd)
	}
	out.waitFor(t, regexp.MustCompile(`image\.pushed +dev +127\.0\.0\.1:\d+/apps/web:1\.6\.0@`))
	curlCmd := strings.TrimSpace(out.waitFor(t, regexp.MustCompile(`(?m)^  curl .*$`)))
	runShell(t, "sh", root, crane, curlCmd)
	out.waitFor(t, regexp.MustCompile(`drift\.detected +prd +vsphere-prd:/prd/web`))
	out.waitFor(t, regexp.MustCompile(`→ #releases: drift on vsphere-prd: /prd/web runs apps/web 1\.3\.0`))

	res, err := d.stop() // Ctrl-C
	if err != nil {
		t.Fatal(err)
	}
	if res.GoodDigest == "" || res.BrokenDigest == "" || res.GoodDigest == res.BrokenDigest {
		t.Fatalf("digests: %q, %q", res.GoodDigest, res.BrokenDigest)
	}

	// index returns the position of the first event that matches, failing
	// the test if there is none.
	index := func(what string, match func(events.Event) bool) int {
		t.Helper()
		for i, e := range res.Events {
			if match(e) {
				return i
			}
		}
		t.Fatalf("no %s among the events", what)
		return -1
	}
	pushed := func(env, tag, digest string) func(events.Event) bool {
		return func(e events.Event) bool {
			d, err := events.DataAs[events.ImagePushed](e)
			return events.Type(e.Type()) == events.TypeImagePushed && err == nil &&
				d.Environment == env && d.Tag == tag && d.Digest == digest
		}
	}
	promoted := func(env string) func(events.Event) bool {
		return func(e events.Event) bool {
			d, err := events.DataAs[events.ImagePromoted](e)
			return events.Type(e.Type()) == events.TypeImagePromoted && err == nil &&
				d.To.Environment == env && d.To.Digest == res.GoodDigest
		}
	}
	deployment := func(typ events.Type, cluster, app, digest string) func(events.Event) bool {
		return func(e events.Event) bool {
			d, err := events.DataAs[events.Deployment](e)
			return events.Type(e.Type()) == typ && err == nil && d.Cluster == cluster && d.AppID == app && d.Digest == digest
		}
	}
	ofType := func(typ events.Type) func(events.Event) bool {
		return func(e events.Event) bool { return events.Type(e.Type()) == typ }
	}

	good := res.GoodDigest
	pushedDev := index("image.pushed dev 1.4.0", pushed("dev", demoGoodTag, good))
	deployedDev := index("deployment.succeeded azure-int /dev/web", deployment(events.TypeDeploymentSucceeded, "azure-int", "/dev/web", good))
	promotedTst := index("image.promoted tst", promoted("tst"))
	pushedTst := index("image.pushed tst 1.4.0", pushed("tst", demoGoodTag, good))
	deployedTst := index("deployment.succeeded azure-int-tst /tst/web", deployment(events.TypeDeploymentSucceeded, "azure-int-tst", "/tst/web", good))
	requested := index("approval.requested", ofType(events.TypeApprovalRequested))
	granted := index("approval.granted", ofType(events.TypeApprovalGranted))
	promotedPrd := index("image.promoted prd", promoted("prd"))
	pushedPrd := index("image.pushed prd 1.4.0", pushed("prd", demoGoodTag, good))
	deployedPrd := index("deployment.succeeded vsphere-prd /prd/web", deployment(events.TypeDeploymentSucceeded, "vsphere-prd", "/prd/web", good))
	pushedBroken := index("image.pushed dev 1.5.0-broken", pushed("dev", demoBrokenTag, res.BrokenDigest))
	failed := index("deployment.failed azure-int /dev/web", deployment(events.TypeDeploymentFailed, "azure-int", "/dev/web", res.BrokenDigest))

	// Order, where causality makes it certain.
	for _, c := range []struct {
		name          string
		before, after int
	}{
		{"push dev → deploy dev", pushedDev, deployedDev},
		{"push dev → promote tst", pushedDev, promotedTst},
		// The copy's push into the next registry, notified by that
		// registry, is what deploys there and asks for the next approval;
		// it may be announced before the promoter announces the copy.
		{"push tst → deploy tst", pushedTst, deployedTst},
		{"push tst → approval requested", pushedTst, requested},
		{"approval requested → granted", requested, granted},
		{"granted → promote prd", granted, promotedPrd},
		{"push prd → deploy prd", pushedPrd, deployedPrd},
		{"deploy dev → push broken", deployedDev, pushedBroken},
		{"deploy tst → push broken", deployedTst, pushedBroken},
		{"deploy prd → push broken", deployedPrd, pushedBroken},
		{"push broken → deployment failed", pushedBroken, failed},
	} {
		if c.before >= c.after {
			t.Errorf("%s: events #%d and #%d are out of order", c.name, c.before, c.after)
		}
	}

	g, _ := events.DataAs[events.ApprovalDecision](res.Events[granted])
	if g.By != demoApprover {
		t.Errorf("approval granted by %q, want %q", g.By, demoApprover)
	}
	f, _ := events.DataAs[events.Deployment](res.Events[failed])
	if !f.RolledBack {
		t.Errorf("deployment.failed: %+v, want rolledBack", f)
	}
	// The broken image is no release: it stays in dev and only /dev/web
	// tried it.
	for i, e := range res.Events {
		switch events.Type(e.Type()) {
		case events.TypeImagePromoted:
			if d, _ := events.DataAs[events.ImagePromoted](e); d.To.Digest == res.BrokenDigest {
				t.Errorf("event #%d: the broken image was promoted: %+v", i, d)
			}
		case events.TypeDeploymentFailed, events.TypeDeploymentStarted, events.TypeDeploymentSucceeded:
			if d, _ := events.DataAs[events.Deployment](e); d.Digest == res.BrokenDigest && d.AppID != "/dev/web" {
				t.Errorf("event #%d: %s of the broken image on %s", i, e.Type(), d.AppID)
			}
			if events.Type(e.Type()) == events.TypeDeploymentFailed && i != failed {
				t.Errorf("event #%d: unexpected %s", i, formatLine(e))
			}
		case events.TypeApprovalRequested:
			if i != requested {
				t.Errorf("event #%d: a second approval was requested: %s", i, formatLine(e))
			}
		}
	}

	// Every app ends on the release, /dev/web after its rollback.
	for _, a := range demoApps {
		want := res.Registries[a.Env] + "/" + demoRepo + ":" + demoGoodTag + "@" + good
		if got := res.Images[a.ID]; got != want {
			t.Errorf("%s on %s runs %q, want %q", a.ID, a.Cluster, got, want)
		}
	}

	text := out.String()
	for _, want := range []string{
		"approving the prd promotion as release-manager",
		"rolled back: true",
		"events tail --nats nats://127.0.0.1:",
		"deployer.reconcileInterval is 2s here",
		"stopping",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q", want)
		}
	}

	// Every event carries the trace it belongs to (the process's tracer
	// provider is this package's, see trace_test.go; the command sets up
	// its own: TestDemoCommandExportsTraces).
	for i, e := range append(res.Events, res.Later...) {
		if tp, _ := e.Extensions()[events.ExtTraceParent].(string); tp == "" {
			t.Errorf("event #%d has no traceparent: %s", i, formatLine(e))
		}
	}
	// The hand-made change is reported as drift.
	drift := false
	for _, e := range res.Later {
		if d, err := events.DataAs[events.DriftDetected](e); err == nil && events.Type(e.Type()) == events.TypeDriftDetected && d.AppID == "/prd/web" {
			drift = true
		}
	}
	if !drift {
		t.Errorf("no drift.detected for /prd/web after the edit")
	}
	// The sample apps' labels are all valid: nothing warns about them.
	for line := range strings.SplitSeq(d.logs.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "label") {
			t.Errorf("the services warned: %s", line)
		}
	}
}

// TestDemoCommandExportsTraces runs `slipway demo --exit` as a process
// with OTEL_EXPORTER_OTLP_ENDPOINT set, as `slipway run` would be: its spans
// reach the collector as service slipway. (In this test process the
// tracers are bound to the package's tracer provider, so it takes a
// process of its own.)
func TestDemoCommandExportsTraces(t *testing.T) {
	collector := startOTLPCollector(t)
	dir := goBuild(t, ".")
	cmd := exec.Command(filepath.Join(dir, "slipway"), "demo", "--exit", "--pause", "0", "--deploy-duration", "50ms", "--ingest-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_EXPORTER=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", "OTEL_SERVICE_NAME=")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("slipway demo --exit: %v\n%s", err, b)
	}
	if !collector.got("service.name", "slipway") {
		t.Errorf("no spans of service.name slipway reached the OTLP endpoint; output:\n%s", b)
	}
}

// otlpCollector is an OTLP/HTTP endpoint that keeps the trace exports it
// receives.
type otlpCollector struct {
	URL string
	mu  sync.Mutex
	raw [][]byte
}

// startOTLPCollector serves a collector for the test.
func startOTLPCollector(t *testing.T) *otlpCollector {
	t.Helper()
	c := &otlpCollector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "not an OTLP/HTTP trace export", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.raw = append(c.raw, b)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// got reports whether an export carried the resource attribute key=value
// (protobuf keeps strings as they are).
func (c *otlpCollector) got(key, value string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.raw {
		if k := bytes.Index(b, []byte(key)); k >= 0 && bytes.Contains(b[k:], []byte(value)) {
			return true
		}
	}
	return false
}

// goBuild builds pkg (this module's requirements decide the versions) and
// returns the directory the binary is in.
func goBuild(t *testing.T, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return dir
}

// runShell runs command with shell in dir, with the directories of extra
// first on PATH, and fails the test if it fails.
func runShell(t *testing.T, shell, dir, path, command string) {
	t.Helper()
	cmd := exec.Command(shell, "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("PATH=%s%c%s", path, os.PathListSeparator, os.Getenv("PATH")))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s -c %q: %v\n%s", shell, command, err, b)
	}
}
