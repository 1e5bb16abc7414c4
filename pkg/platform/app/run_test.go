package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// probe is a service that hands its Deps to the test and waits.
type probe struct{ deps chan app.Deps }

func (probe) Name() string                                 { return "probe" }
func (probe) CheckConfig(*config.Config, *config.Problems) {}
func (p probe) Run(ctx context.Context, d app.Deps) error {
	p.deps <- d
	<-ctx.Done()
	return nil
}

// runProbe runs a probe service under app.Run until the test ends and
// returns the Deps the probe was given.
func runProbe(t *testing.T, cfg *config.Config) app.Deps {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := probe{deps: make(chan app.Deps, 1)}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), p) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case d := <-p.deps:
		return d
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not started within 30s")
	}
	panic("unreachable")
}

// TestReadinessTellsTheTruth: /readyz must fail while NATS is away and
// recover by itself when it is back, without a restart of the service.
func TestReadinessTellsTheTruth(t *testing.T) {
	ns := testkit.NATS(t)
	cfg := &config.Config{}
	cfg.NATS.URL = ns.URL
	cfg.Ops.Listen = testkit.FreeAddr(t)
	cfg.NATS.Stream = config.Stream{Name: "SLIPWAY", Replicas: 1, MaxAge: time.Hour, DuplicateWindow: 10 * time.Minute}

	d := runProbe(t, cfg)
	ctx := t.Context()
	if _, err := d.JS.Stream(ctx, "SLIPWAY_DLQ"); err != nil {
		t.Errorf("the runner must create the dead-letter stream too: %v", err)
	}

	// A process without ingest serves /readyz on ops.listen.
	readyz := func() int {
		resp, err := http.Get("http://" + cfg.Ops.Listen + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.WaitFor(t, "ready", func() bool { return len(d.Health.Ready(ctx)) == 0 && readyz() == http.StatusOK })
	ns.Shutdown()
	testkit.WaitFor(t, "not ready while NATS is down", func() bool {
		return d.Health.Ready(ctx)["nats"] != "" && readyz() == http.StatusServiceUnavailable
	})
	ns.Restart(t)
	testkit.WaitFor(t, "ready again after NATS is back", func() bool { return len(d.Health.Ready(ctx)) == 0 && readyz() == http.StatusOK })
}

// TestRunStartsEmbeddedServer: with nats.url empty, other processes can
// connect to the embedded server at embedded.listen.
func TestRunStartsEmbeddedServer(t *testing.T) {
	cfg, err := config.Parse([]byte("ops: {listen: \"off\"}\nnats:\n  embedded:\n    listen: 127.0.0.1:0\n    storeDir: "+t.TempDir()+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	d := runProbe(t, cfg)
	info, err := d.JS.AccountInfo(t.Context())
	if err != nil || info.Streams != 2 {
		t.Errorf("embedded JetStream: %+v, %v (want the event and dead-letter streams)", info, err)
	}
}

// TestRunFailsOnRefusedCredentials: a wrong password is not an outage to
// wait out; Run must stop and say why instead of retrying in silence.
func TestRunFailsOnRefusedCredentials(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		Username: "slipway", Password: "right", NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("nats: { url: %q, user: slipway, password: wrong }\nops: { listen: \"off\" }\n", srv.ClientURL())),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), probe{deps: make(chan app.Deps, 1)})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (context: %v), want an authorization error before the deadline", err, ctx.Err())
	}
	if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("Run = %v, want the server's authorization error", err)
	}
}
