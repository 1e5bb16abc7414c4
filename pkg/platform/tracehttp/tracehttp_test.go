package tracehttp_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/tracehttp"
)

var spans = tracetest.NewSpanRecorder()

func init() {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
}

// receiver is an HTTP server that keeps the traceparent of each request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	parent []string
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.parent = append(r.parent, req.Header.Get("traceparent"))
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

// spanOf returns the one ended span that is a child of parent.
func spanOf(t *testing.T, parent trace.SpanContext) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Parent().SpanID() == parent.SpanID() && s.SpanContext().TraceID() == parent.TraceID() {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d client spans under the caller's span, want 1", len(found))
	}
	return found[0]
}

func TestClientSpanFollowsTheConventionsAndTheReceiverJoinsTheTrace(t *testing.T) {
	rcv := newReceiver(t, http.StatusAccepted)
	secretURL := rcv.srv.URL + "/services/T000/B000/s3cret?sig=alsosecret"
	client := &http.Client{Transport: tracehttp.Transport(nil, config.RedactSecretURL)}

	ctx, parent := otel.Tracer("test").Start(t.Context(), "notify")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, secretURL, strings.NewReader("{}"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	if req.Header.Get("traceparent") != "" {
		t.Error("the caller's request was changed")
	}

	s := spanOf(t, parent.SpanContext())
	u, _ := url.Parse(rcv.srv.URL)
	a := attrs(s)
	if s.Name() != "POST" || s.SpanKind() != trace.SpanKindClient {
		t.Errorf("span %q kind %s, want POST client", s.Name(), s.SpanKind())
	}
	want := map[attribute.Key]string{
		"http.request.method":       "POST",
		"server.address":            u.Hostname(),
		"server.port":               u.Port(),
		"url.full":                  config.RedactSecretURL(secretURL),
		"http.response.status_code": strconv.Itoa(http.StatusAccepted),
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("%s = %q, want %q", k, a[k], v)
		}
	}
	for k, v := range a {
		if strings.Contains(v, "s3cret") || strings.Contains(v, "alsosecret") {
			t.Errorf("%s shows the secret: %q", k, v)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	want0 := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
	if len(rcv.parent) != 1 || rcv.parent[0] != want0 {
		t.Errorf("traceparent %q, want the client span's %q", rcv.parent, want0)
	}
}

func TestClientSpanIsNamedAfterTheRouteAndFailsOnAnErrorAnswer(t *testing.T) {
	rcv := newReceiver(t, http.StatusConflict)
	client := &http.Client{Transport: tracehttp.Transport(nil, config.RedactURL)}
	ctx, parent := otel.Tracer("test").Start(t.Context(), "deploy")
	req, _ := http.NewRequestWithContext(tracehttp.WithRoute(ctx, "/v2/apps/{id}"), http.MethodPut, rcv.srv.URL+"/v2/apps/prd/web?force=true", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	s := spanOf(t, parent.SpanContext())
	a := attrs(s)
	if s.Name() != "PUT /v2/apps/{id}" || s.Status().Code.String() != "Error" || a["error.type"] != "409" {
		t.Errorf("span %q status %v error.type %q, want PUT /v2/apps/{id}, an error, 409", s.Name(), s.Status(), a["error.type"])
	}
	if a["url.full"] != config.RedactURL(rcv.srv.URL+"/v2/apps/prd/web?force=true") {
		t.Errorf("url.full = %q", a["url.full"])
	}
}

func TestRequestOutsideATraceMakesNoSpan(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK)
	before := len(spans.Ended())
	resp, err := (&http.Client{Transport: tracehttp.Transport(nil, nil)}).Get(rcv.srv.URL + "/v2/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(spans.Ended()) - before; n != 0 {
		t.Errorf("%d spans", n)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.parent[0] != "" {
		t.Errorf("traceparent %q sent outside a trace", rcv.parent[0])
	}
}
