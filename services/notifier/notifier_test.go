package notifier_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/webhook"
)

// Events are routed, and each receiver gets each of its events once, as the
// exact stored CloudEvent, with a valid signature.
func TestWebhookGetsEachEventOnce(t *testing.T) {
	deploys := newHook(t, nil)
	audit := newHook(t, nil)
	e := newEnv(t, `
  receivers:
    - { name: deploys, webhook: { url: "`+deploys.srv.URL+`/slipway", secret: `+hookSecret+` } }
    - { name: audit, webhook: { url: "`+audit.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - match: { types: ["deployment.*", "image.pushed"], environments: [prd] }
      receivers: [deploys]
      continue: true
    - match: { repositories: ["apps/**"] }
      receivers: [audit]
`)
	e.start(&notifier.Service{})
	pushDev := pushedEvent(t, "dev", "1.4.0")
	pushPrd := pushedEvent(t, "prd", "1.4.0")
	started := deploymentEvent(t, events.TypeDeploymentStarted, "prd", "vsphere-prd", "1.4.0")
	succeeded := deploymentEvent(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", "1.4.0")
	drift := newEvent(t, events.TypeDriftDetected, "prd", "vsphere-prd:/prd/web", events.DriftDetected{Cluster: "vsphere-prd", AppID: "/prd/web"})
	e.publish(pushDev, pushPrd, started, succeeded, drift)
	// The same events again: JetStream drops them as duplicates.
	e.publish(pushDev, succeeded)
	e.drained()

	if got, want := deploys.delivered(), ids([]events.Event{pushPrd, started, succeeded}); !slices.Equal(got, want) {
		t.Errorf("deploys got %v, want %v", got, want)
	}
	// The drift has no image: a route on repositories does not take it.
	if got, want := audit.delivered(), ids([]events.Event{pushDev, pushPrd, started, succeeded}); !slices.Equal(got, want) {
		t.Errorf("audit got %v, want %v", got, want)
	}
	bodies := stored(t, e.js)
	for _, h := range []*hook{deploys, audit} {
		for _, r := range h.all() {
			if string(r.body) != string(bodies[r.event.ID()]) {
				t.Errorf("body of %s differs from the stored event:\n got %s\nwant %s", r.event.ID(), r.body, bodies[r.event.ID()])
			}
		}
	}
	if n := e.metric("slipway_notifier_sent_total", "receiver", "deploys", "kind", "webhook"); n != 3 {
		t.Errorf("sent_total{deploys} = %v, want 3", n)
	}
	if n := e.metric("slipway_notifier_sent_total", "receiver", "audit", "kind", "webhook"); n != 4 {
		t.Errorf("sent_total{audit} = %v, want 4", n)
	}
	if n := e.metric("slipway_notifier_send_seconds", "receiver", "audit"); n != 4 {
		t.Errorf("send_seconds{audit} count = %v, want 4", n)
	}
}

// A receiver in a 429 storm: every other request of the first ones is
// answered 429 with Retry-After: 1, then all are accepted. Every event is
// delivered exactly once, in stream order.
func TestRateLimitedStormThenRecovery(t *testing.T) {
	const stormed = 3 // events that get a 429 first
	h := newHook(t, func(w http.ResponseWriter, n int, _ events.Event) int {
		if n <= 2*stormed && n%2 == 1 {
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	e := newEnv(t, `
  receivers:
    - { name: slow, webhook: { url: "`+h.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - receivers: [slow]
`)
	// A back-off far longer than the test's patience: only the
	// Retry-After can bring the events back in time.
	e.start(&notifier.Service{BackOff: []time.Duration{time.Hour}})
	var evs []events.Event
	for i := range 5 {
		evs = append(evs, pushedEvent(t, "dev", "1.0."+string(rune('0'+i))))
	}
	e.publish(evs...)
	e.drained()

	if got, want := h.delivered(), ids(evs); !slices.Equal(got, want) {
		t.Errorf("delivered %v\nwant once each, in order: %v", got, want)
	}
	// Each stormed event was tried twice, in order too: no event overtook
	// one waiting for its retry.
	var tried []string
	for _, r := range h.all() {
		tried = append(tried, r.event.ID())
	}
	var want []string
	for i, ev := range evs {
		want = append(want, ev.ID())
		if i < stormed {
			want = append(want, ev.ID())
		}
	}
	if !slices.Equal(tried, want) {
		t.Errorf("requests %v\nwant %v", tried, want)
	}
	if n := e.metric("slipway_notifier_failed_total", "receiver", "slow", "retryable", "true"); n != stormed {
		t.Errorf("failed_total{retryable=true} = %v, want %d", n, stormed)
	}
	if n := len(messages(t, e.js, bus.DeadLetterStreamName(bus.DefaultStream), ">")); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// A receiver that is down past the last attempt: one notification.failed
// per event (routed like any event, here to a second receiver), the event in
// the dead-letter stream, and no notification.failed about a failed
// notification.failed or event.deadlettered: the chain of failures about
// failures ends.
func TestReceiverDownGivesUp(t *testing.T) {
	down := newHook(t, func(http.ResponseWriter, int, events.Event) int { return http.StatusInternalServerError })
	ops := newHook(t, nil)
	e := newEnv(t, `
  receivers:
    - { name: down, webhook: { url: "`+down.srv.URL+`", secret: `+hookSecret+` } }
    - { name: ops, webhook: { url: "`+ops.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - receivers: [down]
      continue: true
    - match: { types: [notification.failed] }
      receivers: [ops]
`)
	e.start(&notifier.Service{MaxDeliver: 3, BackOff: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}})
	evs := e.publish(pushedEvent(t, "dev", "2.0.0"), deploymentEvent(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", "2.0.0"))

	testkit.WaitFor(t, "a notification.failed for each event at ops", func() bool { return len(ops.delivered()) == 2 })
	dlq := bus.DeadLetterStreamName(bus.DefaultStream)
	// The two events and the two notification.failed events, which the
	// down receiver could not take either, and the four event.deadlettered
	// announcing them, which it could not take either and which announce
	// nothing more.
	testkit.WaitFor(t, "eight dead letters", func() bool { return len(messages(t, e.js, dlq, ">")) == 8 })
	e.drained()
	announced := messages(t, e.js, bus.DefaultStream, events.FilterSubject(events.TypeEventDeadLettered, ""))
	if len(announced) != 4 {
		t.Errorf("%d event.deadlettered events, want 4 (none about themselves)", len(announced))
	}

	failed := messages(t, e.js, bus.DefaultStream, events.FilterSubject(events.TypeNotificationFailed, ""))
	if len(failed) != 2 {
		t.Fatalf("%d notification.failed events, want 2 (one per event, none about themselves)", len(failed))
	}
	for i, m := range failed {
		f, err := events.FromMsg(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		d, err := events.DataAs[events.NotificationFailed](f)
		if err != nil {
			t.Fatal(err)
		}
		src := evs[i]
		if d.Receiver != "down" || d.EventID != src.ID() || d.EventType != src.Type() || d.Attempts != 3 || !strings.Contains(d.Error, "500") {
			t.Errorf("notification.failed data %+v for %s", d, src.ID())
		}
		if f.ID() != events.CausedID(src.ID(), events.TypeNotificationFailed, "down", "") ||
			events.CausationOf(f) != src.ID() || events.EnvironmentOf(f) != events.EnvironmentOf(src) {
			t.Errorf("notification.failed %s: causation %s, environment %s", f.ID(), events.CausationOf(f), events.EnvironmentOf(f))
		}
	}
	if got, want := ops.delivered(), []string{failedID(t, failed[0]), failedID(t, failed[1])}; !slices.Equal(got, want) {
		t.Errorf("ops got %v, want %v", got, want)
	}
	// Three attempts at each of the eight events, and nothing else.
	if n := len(down.all()); n != 24 {
		t.Errorf("down receiver got %d requests, want 24", n)
	}
	dead := map[string]string{}
	for _, m := range messages(t, e.js, dlq, ">") {
		f, err := events.FromMsg(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		dead[f.ID()] = m.Headers().Get(bus.HeaderDLQConsumer) + " " + m.Headers().Get(bus.HeaderDLQDeliveries)
	}
	dl := append(ids(evs), failedID(t, failed[0]), failedID(t, failed[1]))
	for _, m := range announced {
		dl = append(dl, failedID(t, m))
	}
	for _, id := range dl {
		if dead[id] != "notifier-down 3" {
			t.Errorf("dead letter of %s: %q, want consumer notifier-down after 3 deliveries", id, dead[id])
		}
	}
	if n := e.metric("slipway_notifier_failed_total", "receiver", "down", "kind", "webhook", "retryable", "true"); n != 24 {
		t.Errorf("failed_total{down} = %v, want 24", n)
	}
}

func failedID(t *testing.T, m interface{ Data() []byte }) string {
	t.Helper()
	e, err := events.FromMsg(m.Data())
	if err != nil {
		t.Fatal(err)
	}
	return e.ID()
}

// A receiver that refuses an event for good (400) gets it once; the failure
// is announced at once.
func TestPermanentFailureAnnouncedAtOnce(t *testing.T) {
	h := newHook(t, func(w http.ResponseWriter, n int, _ events.Event) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	e := newEnv(t, `
  receivers:
    - { name: picky, webhook: { url: "`+h.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - match: { types: ["image.*"] }
      receivers: [picky]
`)
	e.start(&notifier.Service{BackOff: []time.Duration{time.Hour}})
	evs := e.publish(pushedEvent(t, "dev", "3.0.0"), pushedEvent(t, "dev", "3.0.1"))
	testkit.WaitFor(t, "the notification.failed event", func() bool {
		return len(messages(t, e.js, bus.DefaultStream, events.FilterSubject(events.TypeNotificationFailed, ""))) == 1
	})
	e.drained()
	if got := h.delivered(); !slices.Equal(got, ids(evs[1:])) {
		t.Errorf("delivered %v", got)
	}
	if n := len(h.all()); n != 2 {
		t.Errorf("%d requests, want 2: a 400 is not retried", n)
	}
	if n := e.metric("slipway_notifier_failed_total", "receiver", "picky", "retryable", "false"); n != 1 {
		t.Errorf("failed_total{retryable=false} = %v", n)
	}
}

// A crash after the receiver accepted an event but before the ack: the
// restarted notifier gets the event again and does not send it twice.
func TestRedeliveryAfterCrashNotSentTwice(t *testing.T) {
	h := newHook(t, nil)
	e := newEnv(t, `
  receivers:
    - { name: hook, webhook: { url: "`+h.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - receivers: [hook]
`)
	crashing := make(chan struct{})
	var once sync.Once
	stop := e.start(&notifier.Service{Hooks: &notifier.Hooks{
		AfterSent: func(ctx context.Context, _, _, _ string) error {
			once.Do(func() { close(crashing) })
			<-ctx.Done()
			return ctx.Err()
		},
	}})
	first := e.publish(pushedEvent(t, "dev", "4.0.0"))[0]
	<-crashing
	stop()
	if got := h.delivered(); !slices.Equal(got, []string{first.ID()}) {
		t.Fatalf("before the restart: %v", got)
	}

	e.start(&notifier.Service{})
	second := e.publish(pushedEvent(t, "dev", "4.0.1"))[0]
	e.drained()
	if got, want := h.delivered(), ids([]events.Event{first, second}); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	c, err := e.js.Consumer(t.Context(), bus.DefaultStream, notifier.ConsumerName("hook"))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.CachedInfo().Delivered.Consumer; d < 3 {
		t.Errorf("%d deliveries: the first event was not redelivered", d)
	}
}

// recording wraps the real webhook integration and keeps what the notifier
// hands it.
type recording struct {
	mu   sync.Mutex
	sent []notify.Notification
}

func (r *recording) constructor(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error) {
	w, err := webhook.New(name, cfg, o)
	if err != nil {
		return nil, err
	}
	return &recorder{Receiver: w, r: r}, nil
}

func (r *recording) notifications() []notify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

type recorder struct {
	notify.Receiver
	r *recording
}

func (rc *recorder) Notify(ctx context.Context, n notify.Notification) error {
	err := rc.Receiver.Notify(ctx, n)
	if err == nil {
		rc.r.mu.Lock()
		rc.r.sent = append(rc.r.sent, n)
		rc.r.mu.Unlock()
	}
	return err
}

// A receiver's templates shape its messages; another receiver keeps the
// defaults.
func TestTemplatesOverride(t *testing.T) {
	h := newHook(t, nil)
	e := newEnv(t, `
  receivers:
    - name: custom
      webhook: { url: "`+h.srv.URL+`", secret: `+hookSecret+` }
      templates:
        title: "{{ .Event.Short }}: {{ .Data.Repository }} {{ .Data.Tag }} on {{ .Event.Environment }}"
        text: "{{ .Message.Title }} ({{ .Data.Actor }})"
        html: "<p>{{ .Message.Title }}</p>"
    - { name: plain, webhook: { url: "`+h.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - receivers: [custom, plain]
`)
	rec := &recording{}
	e.start(&notifier.Service{Integrations: map[string]notifier.Constructor{"webhook": rec.constructor}})
	ev := e.publish(pushedEvent(t, "dev", "5.0.0"))[0]
	e.drained()

	byTitle := map[string]notify.Message{}
	for _, n := range rec.notifications() {
		if n.Event.ID() != ev.ID() || n.Channel != "" {
			t.Errorf("notification of %s on channel %q", n.Event.ID(), n.Channel)
		}
		byTitle[n.Message.Title] = n.Message
	}
	custom, ok := byTitle["image.pushed: apps/web 5.0.0 on dev"]
	if !ok {
		t.Fatalf("no templated message among %v", byTitle)
	}
	if custom.Text != "apps/web 5.0.0 pushed to dev (ci)" || custom.HTML != "<p>apps/web 5.0.0 pushed to dev</p>" || custom.Thread != digest {
		t.Errorf("templated message %+v", custom)
	}
	if _, ok := byTitle["apps/web 5.0.0 pushed to dev"]; !ok || len(byTitle) != 2 {
		t.Errorf("default message missing: %v", byTitle)
	}
}

// A bad template, or a kind this build cannot send to, stops the notifier
// at start.
func TestBadConfigFailsAtStart(t *testing.T) {
	e := newEnv(t, `
  receivers:
    - name: broken
      webhook: { url: "http://127.0.0.1:1" }
      templates: { title: "{{ .Event.ID" }
  routes:
    - match: { types: ["deployments.*"] }
      receivers: [broken]
`)
	err := (&notifier.Service{}).Run(t.Context(), appDeps(e))
	if err == nil || !strings.Contains(err.Error(), "templates.title") || !strings.Contains(err.Error(), "matches no event type") {
		t.Fatalf("Run = %v", err)
	}
	var p config.Problems
	notifier.New().CheckConfig(e.cfg, &p)
	if len(p) == 0 {
		t.Fatal("CheckConfig accepted it")
	}
}
