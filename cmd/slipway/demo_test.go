package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
)

// demoOutput collects the demo's output and cancels the demo once it
// prints its instructions, as a person pressing Ctrl-C would.
type demoOutput struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *demoOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "Ctrl-C stops everything") {
		w.cancel()
	}
	return len(p), nil
}

func (w *demoOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestDemo plays `slipway demo`'s scenario headless, with no pauses and
// fast deployments: the release reaches prd after the approval, the broken
// image is rolled back, every app ends on the release, and the demo stops
// cleanly when interrupted.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &demoOutput{cancel: cancel}
	res, err := runDemo(ctx, out, demoOptions{
		IngestListen:   "127.0.0.1:0",
		DeployDuration: 50 * time.Millisecond,
		BrokenTimeout:  time.Second,
		StepTimeout:    2 * time.Minute,
	})
	t.Logf("output:\n%s", out)
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
	index("image.pushed tst 1.4.0", pushed("tst", demoGoodTag, good))
	deployedTst := index("deployment.succeeded azure-int-tst /tst/web", deployment(events.TypeDeploymentSucceeded, "azure-int-tst", "/tst/web", good))
	requested := index("approval.requested", ofType(events.TypeApprovalRequested))
	granted := index("approval.granted", ofType(events.TypeApprovalGranted))
	promotedPrd := index("image.promoted prd", promoted("prd"))
	index("image.pushed prd 1.4.0", pushed("prd", demoGoodTag, good))
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
		{"promote tst → deploy tst", promotedTst, deployedTst},
		{"promote tst → approval requested", promotedTst, requested},
		{"approval requested → granted", requested, granted},
		{"granted → promote prd", granted, promotedPrd},
		{"promote prd → deploy prd", promotedPrd, deployedPrd},
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
		"stopping",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}
