package main

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/promoter"
)

// spans records every span of the test binary. The services' tracers are
// package variables that bind to the first global provider set, so it is
// set here, before any test (a later "slipway run" sets its own provider,
// which only what asks otel.GetTracerProvider then would see).
var spans = tracetest.NewSpanRecorder()

func init() {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
}

// TestOnePushOneTrace: one push to dev gives one connected trace across the
// services — the webhook, the publish of every event, every consume, the
// registry copy, the Marathon PUT and follow, and every notification.
func TestOnePushOneTrace(t *testing.T) {
	ns := testkit.NATS(t)
	hook := &auditHook{secret: []byte("hook-s3cret"), got: map[string]int{}}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	marathon := startMarathon(t)

	parse := func(doc string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	common := fmt.Sprintf(`
ingest:
  listen: "127.0.0.1:0"
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { none: true } }
notify:
  receivers:
    - name: audit-hook
      webhook: { url: %q, secret: hook-s3cret }
  routes:
    - receivers: [audit-hook]
ops: { listen: "off" }
deployer: { pollInterval: 100ms }
`, hookSrv.URL)
	// Only dev notifies ingest: the trace starts at that one webhook (tst's
	// notification of the copy would start a trace of its own). The
	// registry needs ingest's address, and ingest its host: take the
	// address first.
	addr := testkit.FreeAddr(t)
	dev := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: "http://" + addr + "/webhooks/dev-registry"})
	tst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	ingestCfg := parse(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
%s`, ns.URL, dev.Host, tst.Host, common))
	ingestCfg.Ingest.Listen = addr
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, ingestCfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	stream := testkit.Record(t, js, "slipway.>")
	startIngest(t, ingestCfg)

	marathon.load(t, fmt.Sprintf(`{"id":"/dev/web","instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/apps/web:1.3.0"}}}`, dev.Host))
	cfg := parse(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q } }
%s`, ns.URL, dev.Host, tst.Host, marathon.url, common))
	runService(t, cfg, promoter.New(), deployer.New(), notifier.New())
	for _, c := range []string{promoter.ConsumerName, deployer.ConsumerName("azure-int"), notifier.ConsumerName("audit-hook")} {
		testkit.WaitFor(t, "consumer "+c, func() bool {
			_, err := js.Consumer(t.Context(), bus.DefaultStream, c)
			return err == nil
		})
	}

	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.4.0")
	pushed := stream.Wait(t, events.TypeImagePushed, 1)[0]
	stream.Wait(t, events.TypeDeploymentSucceeded, 1)
	stream.Wait(t, events.TypeImagePromoted, 1)

	traceID := trace.SpanContextFromContext(events.ExtractTrace(t.Context(), pushed)).TraceID()
	if !traceID.IsValid() {
		t.Fatal("the image.pushed event carries no traceparent")
	}
	chain := stream.All()
	for _, e := range chain {
		if got := trace.SpanContextFromContext(events.ExtractTrace(t.Context(), e)).TraceID(); got != traceID {
			t.Errorf("event %s (%s) is in trace %s, want %s", e.ID(), e.Type(), got, traceID)
		}
	}
	testkit.WaitFor(t, "every event at the webhook", func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, e := range chain {
			if hook.got[e.ID()] == 0 {
				return false
			}
		}
		return true
	})

	// The spans end a little after their effects: wait for the whole tree.
	deadline := time.Now().Add(30 * time.Second)
	for {
		tr := collect(traceID)
		problem := tr.check(chain)
		if problem == "" {
			t.Logf("trace %s:\n%s", traceID, tr.tree())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s\ntrace %s:\n%s\nother traces:\n%s", problem, traceID, tr.tree(), otherTraces(traceID))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spanTree is the ended spans of one trace.
type spanTree struct {
	byID     map[trace.SpanID]sdktrace.ReadOnlySpan
	children map[trace.SpanID][]sdktrace.ReadOnlySpan
	roots    []sdktrace.ReadOnlySpan
}

func collect(id trace.TraceID) *spanTree {
	tr := &spanTree{byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}, children: map[trace.SpanID][]sdktrace.ReadOnlySpan{}}
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() == id {
			tr.byID[s.SpanContext().SpanID()] = s
		}
	}
	for _, s := range tr.byID {
		if _, ok := tr.byID[s.Parent().SpanID()]; ok {
			tr.children[s.Parent().SpanID()] = append(tr.children[s.Parent().SpanID()], s)
		} else {
			tr.roots = append(tr.roots, s)
		}
	}
	for _, c := range tr.children {
		sort.Slice(c, func(i, j int) bool { return c[i].StartTime().Before(c[j].StartTime()) })
	}
	return tr
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

// find returns the spans under (or, with a zero id, in) the tree whose name
// starts with prefix and that match the attributes given as key, value.
func (tr *spanTree) find(under trace.SpanID, prefix string, kv ...string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	var walk func(s sdktrace.ReadOnlySpan)
	match := func(s sdktrace.ReadOnlySpan) {
		if !strings.HasPrefix(s.Name(), prefix) {
			return
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if attr(s, attribute.Key(kv[i])) != kv[i+1] {
				return
			}
		}
		out = append(out, s)
	}
	walk = func(s sdktrace.ReadOnlySpan) {
		for _, c := range tr.children[s.SpanContext().SpanID()] {
			match(c)
			walk(c)
		}
	}
	if !under.IsValid() {
		for _, s := range tr.byID {
			match(s)
		}
		return out
	}
	walk(tr.byID[under])
	return out
}

// check returns what is missing from or wrong with the trace of chain, or "".
func (tr *spanTree) check(chain []events.Event) string {
	if len(tr.roots) != 1 || tr.roots[0].Name() != "POST /webhooks/:source" {
		names := make([]string, len(tr.roots))
		for i, r := range tr.roots {
			names[i] = r.Name()
		}
		return fmt.Sprintf("roots %q, want the webhook span alone", names)
	}
	root := tr.roots[0].SpanContext().SpanID()
	one := func(under trace.SpanID, what, prefix string, kv ...string) (trace.SpanID, string) {
		found := tr.find(under, prefix, kv...)
		if len(found) != 1 {
			return trace.SpanID{}, fmt.Sprintf("%d %s spans (%q %v), want 1", len(found), what, prefix, kv)
		}
		return found[0].SpanContext().SpanID(), ""
	}
	// Each event: published once in the trace, consumed by every consumer
	// as a child of the publish, notified under the notifier's consume.
	for _, e := range chain {
		pub, p := one(trace.SpanID{}, "publish", "publish "+subjectOf(e), "messaging.message.id", e.ID())
		if p != "" {
			return p
		}
		if ps := tr.byID[pub]; ps.SpanKind() != trace.SpanKindProducer {
			return "publish span " + ps.Name() + " is not a producer span"
		}
		consumers := []string{notifier.ConsumerName("audit-hook")}
		if events.Type(e.Type()) == events.TypeImagePushed {
			consumers = append(consumers, promoter.ConsumerName, deployer.ConsumerName("azure-int"))
		}
		for _, c := range consumers {
			found := tr.find(pub, "process "+subjectOf(e), "messaging.consumer.group.name", c)
			if len(found) == 0 || found[0].Parent().SpanID() != pub || !found[0].Parent().IsRemote() {
				return fmt.Sprintf("no consume span of %s by %s under its publish span", e.Type(), c)
			}
			if c == notifier.ConsumerName("audit-hook") {
				n, p := one(found[0].SpanContext().SpanID(), "notify", "notify audit-hook")
				if p != "" {
					return p + " under the notifier's consume of " + e.Type()
				}
				// The webhook request: a client span the receiver joins.
				if _, p := one(n, "webhook POST", "POST", "http.request.method", "POST", "server.address", "127.0.0.1"); p != "" {
					return p + " under the notification of " + e.Type()
				}
			}
		}
	}
	pushed := "slipway.image.pushed.dev"
	pushedPub, p := one(root, "publish", "publish "+pushed)
	if p != "" {
		return p + " under the webhook span"
	}
	deploy, p := one(pushedPub, "process", "process "+pushed, "messaging.consumer.group.name", deployer.ConsumerName("azure-int"))
	if p != "" {
		return p
	}
	update, p := one(deploy, "Marathon update", "marathon update app", "marathon.cluster", "azure-int", "marathon.app.id", "/dev/web")
	if p != "" {
		return p + " under the deployer's consume"
	}
	// One span name per route, not per app.
	if _, p := one(update, "Marathon PUT", "PUT /v2/apps/{id}", "http.request.method", "PUT"); p != "" {
		return p + " under the Marathon update"
	}
	follow, p := one(deploy, "follow", "follow deployment")
	if p != "" {
		return p + " under the deployer's consume"
	}
	if _, p := one(follow, "publish", "publish slipway.deployment.succeeded.dev"); p != "" {
		return p + " under the follow span"
	}
	promote, p := one(pushedPub, "process", "process "+pushed, "messaging.consumer.group.name", promoter.ConsumerName)
	if p != "" {
		return p
	}
	if _, p := one(promote, "copy", "copy image"); p != "" {
		return p + " under the promoter's consume"
	}
	if _, p := one(promote, "publish", "publish slipway.image.promoted.tst"); p != "" {
		return p + " under the promoter's consume"
	}
	return ""
}

func subjectOf(e events.Event) string {
	s, _ := events.SubjectOf(e)
	return s
}

// tree renders the trace, one span a line, indented under its parent.
func (tr *spanTree) tree() string {
	var b strings.Builder
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		fmt.Fprintf(&b, "%s%s [%s]", strings.Repeat("  ", depth), s.Name(), s.SpanKind())
		if g := attr(s, "messaging.consumer.group.name"); g != "" {
			fmt.Fprintf(&b, " group=%s", g)
		}
		b.WriteString("\n")
		for _, c := range tr.children[s.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, r := range tr.roots {
		walk(r, 0)
	}
	return b.String()
}

// otherTraces lists the span names of every other trace, for the failure
// message.
func otherTraces(except trace.TraceID) string {
	names := map[trace.TraceID][]string{}
	for _, s := range spans.Ended() {
		if id := s.SpanContext().TraceID(); id != except {
			names[id] = append(names[id], s.Name())
		}
	}
	var b strings.Builder
	for id, n := range names {
		fmt.Fprintf(&b, "%s: %s\n", id, strings.Join(n, ", "))
	}
	return b.String()
}
