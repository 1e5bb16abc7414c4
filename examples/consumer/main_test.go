package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// deadline only fails a stuck test; nothing waits for it to pass.
const deadline = 30 * time.Second

// lines hands each write (one audit line) to the test.
type lines chan string

func (l lines) Write(p []byte) (int, error) { l <- string(p); return len(p), nil }

func TestRunAuditsProductionDeploymentsOnly(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(deadline) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}

	// Published before the prd deployment, so a filter letting them through
	// would show them first.
	dev := publish(t, js, events.TypeDeploymentSucceeded, "dev", events.Deployment{Cluster: "azure-int", Environment: "dev", AppID: "/payments/api", ToImage: "dev.example/payments/api:1.4.0"})
	pushed := publish(t, js, events.TypeImagePushed, "prd", events.ImagePushed{Environment: "prd", Registry: "registry.prod.example", Repository: "payments/api", Tag: "1.4.0"})
	prd := publish(t, js, events.TypeDeploymentSucceeded, "prd", events.Deployment{
		Cluster: "swarm-prd", Environment: "prd", Platform: events.PlatformSwarm, AppID: "payments_api",
		ToImage: "registry.prod.example/payments/api:1.4.0", Digest: "sha256:abc", DeploymentID: "1187", Revision: "1187", DurationMs: 4200,
	})

	out := make(lines, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nc, out) }()

	var line string
	select {
	case line = <-out:
	case <-time.After(deadline):
		t.Fatal("no audit line")
	}
	for _, want := range []string{"deployment.succeeded", "cluster=swarm-prd", "platform=swarm", "app=payments_api",
		"image=registry.prod.example/payments/api:1.4.0", "digest=sha256:abc", "deployment=1187", "id=" + prd.ID()} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line %q lacks %q", line, want)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("run did not return after cancel")
	}
	close(out)
	for l := range out {
		if strings.Contains(l, dev.ID()) || strings.Contains(l, pushed.ID()) {
			t.Errorf("audit line for an event outside the filter: %q", l)
		} else {
			t.Errorf("extra audit line %q", l)
		}
	}
}

func publish(t *testing.T, js jetstream.JetStream, typ events.Type, env string, data any) events.Event {
	t.Helper()
	e, err := events.New(t.Context(), events.Spec{
		ID: events.ID(t.Name(), string(typ), env), Type: typ, Source: "/slipway/test", Environment: env, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(js, "").Publish(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	return e
}
