package marathon

import (
	"encoding/json"
	"net/url"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

var spans = tracetest.NewSpanRecorder()

func init() {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
}

// An update is one span, and each of its HTTP attempts a client span named
// after the route, not the app, with the conventions' attributes.
func TestUpdateAppSpansFollowTheConventions(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/prd/web"}`)
	c, srv := f.start(t, config.MarathonAuth{})
	f.failNext(503)
	ctx, root := otel.Tracer("test").Start(ctxT(t), "deploy")
	if _, err := c.UpdateApp(ctx, "/prd/web", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, false); err != nil {
		t.Fatal(err)
	}
	root.End()

	var update sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			continue
		}
		switch s.SpanKind() {
		case trace.SpanKindInternal:
			if s.Name() == "marathon update app" {
				update = s
			}
		case trace.SpanKindClient:
			attempts = append(attempts, s)
		}
	}
	if update == nil {
		t.Fatal("no marathon update app span")
	}
	if len(attempts) != 2 {
		t.Fatalf("%d client spans, want one per attempt (2)", len(attempts))
	}
	u, _ := url.Parse(srv.URL)
	for i, s := range attempts {
		if s.Name() != "PUT /v2/apps/{id}" || s.Parent().SpanID() != update.SpanContext().SpanID() {
			t.Errorf("attempt %d: span %q under %s, want PUT /v2/apps/{id} under the update", i, s.Name(), s.Parent().SpanID())
		}
		got := map[string]string{}
		for _, kv := range s.Attributes() {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		want := map[string]string{
			"http.request.method":       "PUT",
			"server.address":            u.Hostname(),
			"server.port":               u.Port(),
			"url.full":                  srv.URL + "/v2/apps/prd/web?force=" + config.Redacted,
			"http.response.status_code": []string{"503", "200"}[i],
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("attempt %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
}
