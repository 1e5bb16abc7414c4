package promoter_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// promote announces a person's promote action, as the CLI would.
func (e *env) promote(image, rule string) events.Event {
	e.t.Helper()
	ev, err := actions.Publish(e.t.Context(), bus.NewPublisher(e.js, ""), actions.Request{
		ID: actions.NewID(), Action: events.ActionPromote, Actor: "alice", Via: events.ViaCLI,
		Target: events.ActionTarget{Environment: "tst", Image: image, Promotion: rule}, Reason: "hotfix",
	}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// caused returns the recorded events of typ caused by the event id.
func (e *env) caused(typ events.Type, id string) []events.Event {
	var out []events.Event
	for _, ev := range e.seen.Of(typ) {
		if events.CausationOf(ev) == id {
			out = append(out, ev)
		}
	}
	return out
}

// TestPromoteActionSkipsTheSoakTime: a rule with a soak time promotes an
// image named by its tag alone at once when a person asks; the digest is
// the one the tag names in the source registry, and the promotion names
// the action as its cause.
func TestPromoteActionSkipsTheSoakTime(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, minAge: 24h }`, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	dig := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")

	action := e.promote(dev.Host+"/apps/web:1.0.0", "dev-to-tst")
	p := e.seen.Wait(t, events.TypeImagePromoted, 1)
	d, _ := events.DataAs[events.ImagePromoted](p[0])
	if events.CausationOf(p[0]) != action.ID() {
		t.Errorf("image.promoted caused by %q, want the action %q", events.CausationOf(p[0]), action.ID())
	}
	if d.Promotion != "dev-to-tst" || d.From.Digest != dig || d.To.Digest != dig || d.To.Registry != tst.Host || d.To.Tag != "1.0.0" {
		t.Errorf("image.promoted: %+v", d)
	}
	if got := testkit.Digest(t, tst.Host+"/apps/web:1.0.0"); got != dig {
		t.Errorf("tst has %s, want %s", got, dig)
	}
}

// TestPromoteActionAsksForTheRulesApproval: "now" skips the soak time,
// never the approval; the request answers the action, and nothing is
// copied before a decision.
func TestPromoteActionAsksForTheRulesApproval(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule[:len(rule)-2]+`, approval: { required: true, approvers: [rm] } }`, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")
	dig := testkit.Digest(t, dev.Host+"/apps/web:1.0.0")

	action := e.promote(dev.Host+"/apps/web:1.0.0@"+dig, "dev-to-tst")
	req := e.seen.Wait(t, events.TypeApprovalRequested, 1)
	if events.CausationOf(req[0]) != action.ID() {
		t.Errorf("approval.requested caused by %q, want the action %q", events.CausationOf(req[0]), action.ID())
	}
	ar, _ := events.DataAs[events.ApprovalRequested](req[0])
	if ar.Promotion != "dev-to-tst" || ar.To.Digest != dig || ar.From.Environment != "dev" {
		t.Errorf("approval.requested: %+v", ar)
	}
	e.drained()
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Errorf("%d image.promoted before any decision", n)
	}
	if _, err := testkit.TryDigest(tst.Host + "/apps/web:1.0.0"); err == nil {
		t.Error("copied before any decision")
	}
}

// TestPromoteActionThatCannotSucceedFailsClearly: an unknown rule, an image
// outside the rule's filters, a tag the registry does not have and a
// registry of another environment each end in one promotion.failed caused
// by the action, not retryable, saying what is wrong.
func TestPromoteActionThatCannotSucceedFailsClearly(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, dev.Host, tst.Host, rule, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/lib/base:1.0.0")

	for _, tc := range []struct{ name, image, rule, want string }{
		{"unknown rule", dev.Host + "/apps/web:1.0.0", "dev-to-prd", `promotion "dev-to-prd" is not configured`},
		{"outside the filters", dev.Host + "/lib/base:1.0.0", "dev-to-tst", "rule dev-to-tst does not promote lib/base:1.0.0"},
		{"not in the registry", dev.Host + "/apps/web:9.9.9", "dev-to-tst", "apps/web:9.9.9 was not found in its registry"},
		{"another registry", tst.Host + "/apps/web:1.0.0", "dev-to-tst", "which is not environment dev's registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			action := e.promote(tc.image, tc.rule)
			testkit.WaitFor(t, "the action's promotion.failed", func() bool {
				return len(e.caused(events.TypePromotionFailed, action.ID())) > 0
			})
			e.drained()
			failed := e.caused(events.TypePromotionFailed, action.ID())
			d, _ := events.DataAs[events.PromotionFailed](failed[0])
			if len(failed) != 1 || d.Retryable || !strings.Contains(d.Error, tc.want) {
				t.Errorf("%d promotion.failed, first %+v; want one, not retryable, saying %q", len(failed), d, tc.want)
			}
		})
	}
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Errorf("%d image.promoted", n)
	}
}

// TestRedeliveredPromoteActionCopiesOnce: the action event delivered again
// (the same event, as after a crash before its acknowledgement) writes
// nothing more to the target registry, does not even ask it, and announces
// nothing more; a second action for the same image is a new request, and
// is answered.
func TestRedeliveredPromoteActionCopiesOnce(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	front, requests := counting(t, tst)
	e := newEnv(t, dev.Host, front, rule, "")
	e.start(promoter.New())
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.0")

	action := e.promote(dev.Host+"/apps/web:1.0.0", "dev-to-tst")
	e.seen.Wait(t, events.TypeImagePromoted, 1)
	e.drained()
	asked := requests.Load()
	if asked == 0 {
		t.Fatal("the first delivery did not reach the target")
	}

	// The same event under another message id: JetStream stores it again
	// and the promoter receives the action a second time.
	m, err := events.ToMsg(action)
	if err != nil {
		t.Fatal(err)
	}
	m.Header.Set(events.HeaderMsgID, "redelivered-"+action.ID())
	if _, err := e.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if got := requests.Load(); got != asked {
		t.Errorf("the redelivered action sent %d more requests to the target", got-asked)
	}
	if n := len(e.seen.Of(events.TypeImagePromoted)); n != 1 {
		t.Errorf("%d image.promoted, want 1", n)
	}

	again := e.promote(dev.Host+"/apps/web:1.0.0", "dev-to-tst")
	testkit.WaitFor(t, "the second action's image.promoted", func() bool {
		return len(e.caused(events.TypeImagePromoted, again.ID())) == 1
	})
}

// counting puts a proxy in front of a registry that counts the requests
// it gets; it returns the proxy's host.
func counting(t *testing.T, target *testkit.Registry) (string, *atomic.Int64) {
	t.Helper()
	u, _ := url.Parse(target.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &requests
}
