package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// dlqEnv is an embedded JetStream with the Slipway streams and a consumer
// "deployer" whose handler fails permanently until fixed is set.
type dlqEnv struct {
	ns      *testkit.NATSServer
	js      jetstream.JetStream
	dlq     jetstream.Stream
	fixed   atomic.Bool
	handled chan string
}

// startDlq starts the environment; window, when not zero, replaces the
// duplicate windows of both streams before anything is published (the
// contract does not allow a short one; a test must not wait 10 minutes).
func startDlq(t *testing.T, window time.Duration) *dlqEnv {
	t.Helper()
	e := &dlqEnv{ns: testkit.NATS(t), handled: make(chan string, 10)}
	_, e.js = e.ns.Connect(t)
	ctx := t.Context()
	if _, err := bus.EnsureStream(ctx, e.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	dlqName := bus.DeadLetterStreamName(bus.DefaultStream)
	if window != 0 {
		for _, name := range []string{bus.DefaultStream, dlqName} {
			s, err := e.js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			cfg.Duplicates = window
			if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	var err error
	if e.dlq, err = e.js.Stream(ctx, dlqName); err != nil {
		t.Fatal(err)
	}
	// Only its own events: the announcements of its dead letters would fail
	// too, and be dead letters of their own.
	c, err := bus.Consume(ctx, e.js, bus.ConsumerConfig{Durable: "deployer", Logger: slog.New(slog.DiscardHandler),
		FilterSubjects: []string{events.FilterSubject(events.TypeImagePromoted, "")}},
		func(_ context.Context, ev events.Event) error {
			if !e.fixed.Load() {
				return bus.Permanent(errors.New("marathon said 422: bad image reference"))
			}
			e.handled <- ev.ID()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return e
}

func (e *dlqEnv) count(t *testing.T) uint64 {
	t.Helper()
	info, err := e.dlq.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// deadLetter publishes an event and waits until it is dead-lettered.
func (e *dlqEnv) deadLetter(t *testing.T) events.Event {
	t.Helper()
	ctx := t.Context()
	ev, err := events.New(ctx, events.Spec{
		ID: events.ID("test", "dlq"), Type: events.TypeImagePromoted, Source: "/slipway/test", Environment: "prd",
		Subject: "registry.prd.example/payments/api",
		Data: events.ImagePromoted{Promotion: "p1",
			From:        events.ImageRef{Environment: "tst", Registry: "registry.tst.example", Repository: "payments/api", Tag: "1.0"},
			To:          events.ImageRef{Environment: "prd", Registry: "registry.prd.example", Repository: "payments/api", Tag: "1.0"},
			BlobsCopied: 2, DurationMs: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "dead letter", func() bool { return e.count(t) == 1 })
	return ev
}

// TestDlqListShowKept dead-letters an event through bus.Consume, then lists
// and shows it with the CLI, and has a redrive inside the duplicate window
// kept, as an operator would see it.
func TestDlqListShowKept(t *testing.T) {
	e := startDlq(t, 0)
	ev := e.deadLetter(t)
	ctx, url := t.Context(), e.ns.URL

	out, err := execute(t, ctx, "dlq", "list", "--nats", url)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "SEQ") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{"1 ", "deployer", "slipway.image.promoted.prd", ev.ID(), "marathon said 422"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("list row %q lacks %q", lines[1], want)
		}
	}

	out, err = execute(t, ctx, "dlq", "list", "--nats", url, "--json")
	if err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	var list []bus.DeadLetter
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(list) != 1 || list[0].Seq != 1 || list[0].EventID != ev.ID() || list[0].Consumer != "deployer" || list[0].Deliveries != 1 {
		t.Errorf("list --json: %+v", list)
	}

	out, err = execute(t, ctx, "dlq", "show", "1", "--nats", url)
	if err != nil {
		t.Fatalf("show: %v\n%s", err, out)
	}
	for _, want := range []string{"Consumer:", "deployer", "Error:", "marathon said 422: bad image reference",
		"Slipway-Dlq-Stream: SLIPWAY", "Content-Type: " + events.ContentType, `"id": "` + ev.ID() + `"`, "\n  \"data\": {"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if _, err := execute(t, ctx, "dlq", "show", "7", "--nats", url); err == nil || !strings.Contains(err.Error(), "no dead letter 7") {
		t.Errorf("show 7: %v", err)
	}
	if _, err := execute(t, ctx, "dlq", "redrive", "--nats", url); err == nil {
		t.Error("redrive without SEQ or --all succeeded")
	}

	out, err = execute(t, ctx, "dlq", "redrive", "1", "--nats", url)
	if err == nil || !strings.Contains(out, "1: kept: event "+ev.ID()+" is still inside the duplicate window; retry after ") ||
		!strings.Contains(out, "0 redriven, 1 kept, 0 failed") {
		t.Fatalf("redrive inside the window: %v\n%s", err, out)
	}
	if n := e.count(t); n != 1 {
		t.Fatalf("%d dead letters after a duplicate redrive, want 1", n)
	}
}

// TestDlqRedrive redrives a dead letter once the duplicate windows are over:
// the consumer handles the event and the dead letter is gone.
func TestDlqRedrive(t *testing.T) {
	e := startDlq(t, 100*time.Millisecond)
	ev := e.deadLetter(t)
	ctx, url := t.Context(), e.ns.URL
	e.fixed.Store(true)

	var out string
	testkit.WaitFor(t, "redrive after the window", func() bool {
		var err error
		out, err = execute(t, ctx, "dlq", "redrive", "--all", "--nats", url)
		if err != nil && !strings.Contains(out, "kept") {
			t.Fatalf("redrive: %v\n%s", err, out)
		}
		return err == nil
	})
	if !strings.Contains(out, "1: redriven: event "+ev.ID()+" to slipway.image.promoted.prd") || !strings.Contains(out, "1 redriven, 0 kept, 0 failed") {
		t.Errorf("redrive:\n%s", out)
	}
	select {
	case id := <-e.handled:
		if id != ev.ID() {
			t.Errorf("handled %s, want %s", id, ev.ID())
		}
	case <-time.After(time.Minute):
		t.Fatal("the redriven event was not handled")
	}
	if n := e.count(t); n != 0 {
		t.Errorf("%d dead letters after redrive, want 0", n)
	}
	out, err := execute(t, ctx, "dlq", "list", "--nats", url)
	if err != nil || strings.TrimSpace(out) != "no dead letters" {
		t.Errorf("list after redrive: %v\n%s", err, out)
	}
	out, err = execute(t, ctx, "dlq", "redrive", "--all", "--nats", url)
	if err != nil || strings.TrimSpace(out) != "no dead letters" {
		t.Errorf("redrive --all with none: %v\n%s", err, out)
	}
}
