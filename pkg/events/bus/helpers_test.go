package bus_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// deadline is a failure deadline, not a synchronisation: generous so that a
// loaded CI machine under -race does not fail spuriously.
const deadline = 30 * time.Second

// spans records every span of the test binary. events.Tracer binds to the
// first global provider, so it is installed once, before any test runs.
var spans = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	os.Exit(m.Run())
}

type env struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	ctx context.Context
}

// start runs an embedded JetStream server with the Slipway streams.
func start(t *testing.T) *env {
	t.Helper()
	e := startServer(t, nil)
	if _, err := bus.EnsureStream(t.Context(), e.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// startServer runs an embedded JetStream server, with the options
// configure changes (configure may be nil), and no stream.
func startServer(t *testing.T, configure func(*server.Options)) *env {
	t.Helper()
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	if configure != nil {
		configure(o)
	}
	s, err := server.NewServer(o)
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
	return &env{srv: s, nc: nc, js: js, ctx: t.Context()}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// consume starts a consumer that is stopped (drained) before the server goes.
// Without filters it takes the deployment events the tests publish, and not
// the event.deadlettered announcements their dead letters cause.
func (e *env) consume(t *testing.T, cfg bus.ConsumerConfig, h bus.Handler) *bus.Consumer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if len(cfg.FilterSubjects) == 0 {
		cfg.FilterSubjects = []string{events.SubjectPrefix + ".deployment.>"}
	}
	c, err := bus.Consume(e.ctx, e.js, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func deployment(t *testing.T, ctx context.Context, id, env string) events.Event {
	t.Helper()
	e, err := events.New(ctx, events.Spec{
		ID:          events.ID("test", id),
		Type:        events.TypeDeploymentSucceeded,
		Source:      "/slipway/test",
		Environment: env,
		Subject:     "azure-int:/payments/api",
		Data: events.Deployment{
			Cluster: "azure-int", Environment: env, AppID: "/payments/api",
			FromImage: "reg/payments/api:1.0.0", ToImage: "reg/payments/api:1.1.0",
			Digest: "sha256:" + id, DurationMs: 1200,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) publish(t *testing.T, ev events.Event) {
	t.Helper()
	if _, err := bus.NewPublisher(e.js, "").Publish(e.ctx, ev); err != nil {
		t.Fatal(err)
	}
}

// terminated delivers the stream sequence of every message the server
// terminated on durable: the last step of a dead-letter, after the copy is
// stored.
func (e *env) terminated(t *testing.T, durable string) <-chan uint64 {
	t.Helper()
	ch := make(chan uint64, 100)
	sub, err := e.nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."+bus.DefaultStream+"."+durable, func(m *nats.Msg) {
		var a struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Errorf("advisory: %v", err)
		}
		ch <- a.StreamSeq
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func (e *env) consumerInfo(t *testing.T, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(e.ctx, bus.DefaultStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// settled asserts that the consumer owes nothing: no event waiting, none
// delivered and unacknowledged.
func (e *env) settled(t *testing.T, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	info := e.consumerInfo(t, durable)
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer %s: %d pending, %d unacknowledged; want none", durable, info.NumPending, info.NumAckPending)
	}
	return info
}

func (e *env) dlqMessages(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(e.ctx, bus.DeadLetterStreamName(bus.DefaultStream))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// storedMsg returns the message with stream sequence seq of the event stream.
func (e *env) storedMsg(t *testing.T, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(e.ctx, bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(e.ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) lastDLQ(t *testing.T, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(e.ctx, bus.DeadLetterStreamName(bus.DefaultStream))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(e.ctx, subject)
	if err != nil {
		t.Fatalf("dead letter on %s: %v", subject, err)
	}
	return m
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// call is what a test handler saw.
type call struct {
	id       string
	delivery bus.Delivery
	ctx      context.Context
}

// recorder is a handler that reports each call and answers with result.
func recorder(result func(c call) error) (bus.Handler, <-chan call) {
	ch := make(chan call, 1000)
	return func(ctx context.Context, e events.Event) error {
		d, _ := bus.DeliveryFrom(ctx)
		c := call{id: e.ID(), delivery: d, ctx: ctx}
		ch <- c
		return result(c)
	}, ch
}
