package dockerapi

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

var spans = tracetest.NewSpanRecorder()

func init() {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
}

func TestRouteIsTheTemplateOfThePath(t *testing.T) {
	for path, want := range map[string]string{
		"/v1.25/containers/json":                         "/containers/json",
		"/v1.41/containers/create":                       "/containers/create",
		"/v1.41/containers/4f1c2a/start":                 "/containers/{id}/start",
		"/v1.25/containers/web.slipway-next/rename":      "/containers/{id}/rename",
		"/v1.41/containers/4f1c2a":                       "/containers/{id}",
		"/v1.41/images/create":                           "/images/create",
		"/v1.41/images/127.0.0.1:5000/apps/web:1.0/json": "/images/{name}/json",
		"/v1.41/images/sha256:abc":                       "/images/{name}",
		"/v1.41/services/web/update":                     "/services/{id}/update",
		"/v1.41/services":                                "/services",
		"/v1.41/tasks":                                   "/tasks",
		"/v1.41/nodes/x1":                                "/nodes/{id}",
		"/v1.41/networks/host/connect":                   "/networks/{id}/connect",
		"/_ping":                                         "/_ping",
		"/v1.25/events":                                  "/events",
		"/v1.25/info":                                    "/info",
	} {
		if got := Route(path); got != want {
			t.Errorf("Route(%q) = %q, want %q", path, got, want)
		}
	}
}

// The client's spans are named after the route, not the container: one
// name per operation whichever container or API version it concerns.
func TestClientSpansAreNamedAfterTheRoute(t *testing.T) {
	c, err := New(config.Docker{Host: testkit.DockerHost(t), APIVersion: "1.25"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, root := otel.Tracer("test").Start(t.Context(), "deploy")
	_, err = c.ContainerInspect(ctx, "slipway-no-such-container")
	root.End()
	if err == nil {
		t.Fatal("inspect of a container that does not exist succeeded")
	}
	var names []string
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() == root.SpanContext().TraceID() && s.Name() != "deploy" {
			names = append(names, s.Name())
		}
	}
	if len(names) != 1 || names[0] != "GET /containers/{id}/json" {
		t.Errorf("spans %q, want one GET /containers/{id}/json", names)
	}
}
