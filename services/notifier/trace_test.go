package notifier_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier"
)

// spans records the spans of this test binary: the tracers are package
// variables that bind to the global provider.
var spans = tracetest.NewSpanRecorder()

func init() {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
}

// A webhook receiver joins the event's trace: the request carries the
// traceparent of its HTTP client span, a child of the notification's span,
// in the trace the event came with.
func TestWebhookReceiverGetsTheTraceparentOfItsSpan(t *testing.T) {
	var (
		mu     sync.Mutex
		parent []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		parent = append(parent, r.Header.Get("traceparent"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, `
  receivers:
    - { name: traced, webhook: { url: "`+srv.URL+`/hooks/s3cret", secret: `+hookSecret+` } }
  routes:
    - receivers: [traced]
`)
	e.start(&notifier.Service{})

	ctx, root := otel.Tracer("test").Start(t.Context(), "push")
	ev := pushedEvent(t, "dev", "1.4.0")
	events.InjectTrace(ctx, &ev)
	root.End()
	e.publish(ev)
	testkit.WaitFor(t, "the webhook request", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(parent) == 1
	})

	var client sdktrace.ReadOnlySpan
	testkit.WaitFor(t, "the client span", func() bool {
		for _, s := range spans.Ended() {
			if s.SpanKind() == trace.SpanKindClient && s.SpanContext().TraceID() == root.SpanContext().TraceID() {
				client = s
				return true
			}
		}
		return false
	})
	mu.Lock()
	got := parent[0]
	mu.Unlock()
	if want := "00-" + client.SpanContext().TraceID().String() + "-" + client.SpanContext().SpanID().String() + "-01"; got != want {
		t.Errorf("traceparent %q, want the client span's %q", got, want)
	}
	if client.Name() != "POST" {
		t.Errorf("client span %q, want POST", client.Name())
	}
	for _, kv := range client.Attributes() {
		if kv.Key == attribute.Key("url.full") && (strings.Contains(kv.Value.AsString(), "s3cret") || !strings.HasPrefix(kv.Value.AsString(), srv.URL)) {
			t.Errorf("url.full = %q, want the host without the secret path", kv.Value.AsString())
		}
	}
	// The notification's span ends after its request's.
	var notify sdktrace.ReadOnlySpan
	testkit.WaitFor(t, "the client span's parent", func() bool {
		for _, s := range spans.Ended() {
			if s.SpanContext().SpanID() == client.Parent().SpanID() {
				notify = s
				return true
			}
		}
		return false
	})
	if notify.Name() != "notify traced" {
		t.Errorf("the client span's parent is %q, want the notify span", notify.Name())
	}
}
