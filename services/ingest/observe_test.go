package ingest_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/ingest"
)

// Each webhook is a span, child of the sender's traceparent when there is
// one, and its events carry the span of their publish, a child of it, as
// their traceparent.
func TestTracing(t *testing.T) {
	spans := recordSpans()
	before := len(spans.Ended())

	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	post(t, srv.URL+"/webhooks/dev-registry", envelope(distPush("e1", "team/web", "1")), http.Header{"Traceparent": {parent}})
	post(t, srv.URL+"/webhooks/dev-registry", envelope(distPush("e2", "team/web", "2")), nil)

	evs := storedEvents(t, r.stream)
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	var ended []sdktrace.ReadOnlySpan // the webhook spans
	published := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended()[before:] {
		if strings.HasPrefix(s.Name(), "publish ") {
			published[s.SpanContext().SpanID()] = s
		} else {
			ended = append(ended, s)
		}
	}
	if len(ended) != 2 {
		t.Fatalf("%d spans ended, want one per webhook", len(ended))
	}
	for i, e := range evs {
		// The event carries the context of its publish span, a child of
		// the webhook span.
		tp, _ := e.Extensions()[events.ExtTraceParent].(string)
		sc := trace.SpanContextFromContext(events.ExtractTrace(t.Context(), e))
		pub := published[sc.SpanID()]
		if pub == nil || pub.Parent().SpanID() != ended[i].SpanContext().SpanID() || pub.Name() != "publish slipway.image.pushed.dev" {
			t.Errorf("event %d traceparent %q, want a publish span under the webhook span %s", i, tp, ended[i].SpanContext().SpanID())
		}
		// The HTTP conventions: "{method} {route}" and the route's attributes.
		if ended[i].Name() != "POST /webhooks/:source" || ended[i].SpanKind() != trace.SpanKindServer {
			t.Errorf("span %q kind %v", ended[i].Name(), ended[i].SpanKind())
		}
		checkAttributes(t, ended[i], map[string]string{
			"http.request.method":       "POST",
			"http.route":                "/webhooks/:source",
			"url.path":                  "/webhooks/dev-registry",
			"url.scheme":                "http",
			"http.response.status_code": "202",
		})
	}
	if got := ended[0].Parent(); got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" || !got.IsRemote() {
		t.Errorf("first span's parent %v, want the incoming traceparent", got)
	}
	if ended[1].Parent().IsValid() {
		t.Errorf("second span has a parent without an incoming traceparent")
	}
}

// A urlToken source's secret is in its path: the span shows the route
// template and the path with the token redacted, nowhere the token.
func TestTracingHidesTheURLToken(t *testing.T) {
	spans := recordSpans()
	before := len(spans.Ended())
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "acr-hook", Format: "distribution", Environment: "dev", Auth: &config.Auth{URLToken: "t0psecret"}}))
	if code, got, _ := post(t, srv.URL+"/webhooks/acr-hook/t0psecret", envelope(distPush("e1", "team/web", "1")), nil); code != http.StatusAccepted {
		t.Fatalf("%d %v", code, got)
	}
	var server []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended()[before:] {
		if s.SpanKind() == trace.SpanKindServer {
			server = append(server, s)
		}
	}
	if len(server) != 1 || server[0].Name() != "POST /webhooks/:source/:token" {
		t.Fatalf("server spans %v, want one POST /webhooks/:source/:token", server)
	}
	checkAttributes(t, server[0], map[string]string{
		"http.route": "/webhooks/:source/:token",
		"url.path":   "/webhooks/acr-hook/" + config.Redacted,
	})
	for _, s := range spans.Ended()[before:] {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "t0psecret") {
				t.Errorf("span %q: %s shows the token", s.Name(), kv.Key)
			}
		}
		if strings.Contains(s.Name(), "t0psecret") {
			t.Errorf("span %q shows the token", s.Name())
		}
	}
}

func checkAttributes(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, kv := range s.Attributes() {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name(), k, got[k], v)
		}
	}
}

var (
	spanRecorder     = tracetest.NewSpanRecorder()
	spanRecorderOnce sync.Once
)

// recordSpans installs an SDK tracer provider that records spans. The
// global provider can be set only once per process (the ingest tracer
// delegates to the first), hence once for every run of the test.
func recordSpans() *tracetest.SpanRecorder {
	spanRecorderOnce.Do(func() {
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spanRecorder)))
	})
	return spanRecorder
}

func TestMetricsAndHealth(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	post(t, srv.URL+"/webhooks/dev-registry", envelope(distPush("e1", "team/web", "1"), distEvent("p", "pull", manifestType, "team/web", "1", digestOf("x"))), nil)
	post(t, srv.URL+"/webhooks/dev-registry", []byte("{"), nil)
	post(t, srv.URL+"/webhooks/nope", []byte("{}"), nil)

	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, want := range []string{
		`slipway_ingest_requests_total{code="202",format="distribution",source="dev-registry"} 1`,
		`slipway_ingest_requests_total{code="400",format="distribution",source="dev-registry"} 1`,
		`slipway_ingest_requests_total{code="404",format="",source=""} 1`,
		`slipway_ingest_events_total{format="distribution",outcome="accepted",source="dev-registry"} 1`,
		`slipway_ingest_events_total{format="distribution",outcome="ignored",source="dev-registry"} 1`,
		`slipway_ingest_publish_seconds_count 1`,
		`slipway_ingest_request_seconds_count{source="dev-registry"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	get(t, srv.URL+"/healthz", http.StatusOK)
	get(t, srv.URL+"/readyz", http.StatusOK)
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, want)
	}
	return string(b)
}

// Run serves on ingest.listen and stops cleanly when its context ends.
func TestServiceRun(t *testing.T) {
	r := newRig(t)
	if name := ingest.New().Name(); name != "ingest" {
		t.Fatalf("name %q", name)
	}
	cfg := testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()})
	addr, stop := r.runService(t, cfg)
	if code, got, _ := post(t, "http://"+addr+"/webhooks/dev-registry", envelope(distPush("e1", "team/web", "1")), nil); code != http.StatusAccepted {
		t.Fatalf("%d %v", code, got)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
}

// The approval API's server span follows the same conventions as the
// webhook's: named after the route template, with its status.
func TestApprovalSpanIsNamedAfterItsRoute(t *testing.T) {
	spans := recordSpans()
	before := len(spans.Ended())
	a := newApprovalRig(t)
	a.create(t, pendingRecord("apr-1", "alice"))
	if code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, `{"reason":"ok"}`); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, raw)
	}
	var server []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended()[before:] {
		if s.SpanKind() == trace.SpanKindServer {
			server = append(server, s)
		}
	}
	if len(server) != 1 || !strings.HasPrefix(server[0].Name(), "POST /approvals/:id/") {
		t.Fatalf("server spans %v, want one POST /approvals/:id/…", server)
	}
	checkAttributes(t, server[0], map[string]string{
		"http.request.method":       "POST",
		"http.route":                strings.TrimPrefix(server[0].Name(), "POST "),
		"url.path":                  "/approvals/apr-1/approve",
		"http.response.status_code": "200",
		"slipway.approver":          "alice",
	})
}
