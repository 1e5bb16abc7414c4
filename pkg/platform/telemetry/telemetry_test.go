package telemetry

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
)

func TestExporterFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{name: "unset: off"},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: true},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: true},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: true},
		{name: "exporter otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "none wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
				t.Setenv(k, tc.env[k])
			}
			exp, err := exporterFromEnv(t.Context())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := exp != nil; got != tc.want {
				t.Fatalf("exporter = %v, want one: %v", exp, tc.want)
			}
			if exp != nil {
				_ = exp.Shutdown(context.Background())
			}
		})
	}
}

func TestSetupTracingServiceName(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=tst")
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	rec := tracetest.NewSpanRecorder()
	shutdown, err := SetupTracing(t.Context(), "slipway-ingest", rec)
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(t.Context(), "s")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans, want 1", len(ended))
	}
	attrs := map[string]string{}
	for _, kv := range ended[0].Resource().Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["service.name"] != "slipway-ingest" || attrs["deployment.environment.name"] != "tst" {
		t.Fatalf("resource = %v", attrs)
	}
	// The binary's version, as slipway --version prints it.
	if v := attrs["service.version"]; v == "" || v != buildinfo.Version() {
		t.Errorf("service.version = %q, want %q", v, buildinfo.Version())
	}
}

// Without an exporter nothing records, but every span still has ids of its
// own in the parent's trace, so the traceparent an event carries names the
// trace of the webhook that caused it.
func TestWithoutExporterSpansPropagateWithoutRecording(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	if _, err := SetupTracing(t.Context(), "slipway-ingest"); err != nil {
		t.Fatal(err)
	}
	tracer := otel.Tracer("test")

	rootCtx, root := tracer.Start(t.Context(), "root")
	rsc := root.SpanContext()
	if !rsc.IsValid() || !rsc.IsSampled() || root.IsRecording() {
		t.Fatalf("root span: valid %v, sampled %v, recording %v; want valid, sampled, not recording", rsc.IsValid(), rsc.IsSampled(), root.IsRecording())
	}
	_, child := tracer.Start(rootCtx, "child")
	csc := child.SpanContext()
	if csc.TraceID() != rsc.TraceID() || csc.SpanID() == rsc.SpanID() || !csc.IsSampled() {
		t.Fatalf("child %s/%s of root %s/%s: want the root's trace, a span id of its own", csc.TraceID(), csc.SpanID(), rsc.TraceID(), rsc.SpanID())
	}
	_, other := tracer.Start(t.Context(), "another root")
	if other.SpanContext().TraceID() == rsc.TraceID() {
		t.Fatal("two roots share a trace id")
	}

	// A caller's traceparent (here unsampled, with a tracestate) is
	// continued as the SDK's parentbased sampler would: same trace, same
	// decision, same tracestate.
	in := propagation.HeaderCarrier(http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		"Tracestate":  {"vendor=x"},
	})
	ctx := otel.GetTextMapPropagator().Extract(t.Context(), in)
	ctx, span := tracer.Start(ctx, "server")
	out := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, out)
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + span.SpanContext().SpanID().String() + "-00"
	if out["traceparent"] != want || out["tracestate"] != "vendor=x" || span.SpanContext().SpanID().String() == "00f067aa0ba902b7" {
		t.Fatalf("injected %v, want traceparent %s and the caller's tracestate", out, want)
	}
}

// A sampler asked for, or a processor, brings the SDK back: it decides.
func TestSamplerSettingUsesTheSDK(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	shutdown, err := SetupTracing(t.Context(), "slipway-ingest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	_, span := otel.Tracer("test").Start(t.Context(), "s")
	if span.SpanContext().IsSampled() {
		t.Fatal("always_off sampled a span: the sampler setting was ignored")
	}
}
