package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/dlqmetrics"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// gauge returns slipway_dead_letters{consumer} as the process's registry
// serves it, and whether the series is there.
func gauge(t *testing.T, reg prometheus.Gatherer, consumer string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "slipway_dead_letters" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" && l.GetValue() == consumer {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// Dead letters show on every process's /metrics: the gauge from the
// dead-letter stream, whoever stored them, and the counter of those this
// process stored, through Deps.Consume.
func TestDeadLetterMetrics(t *testing.T) {
	ns := testkit.NATS(t)
	cfg := &config.Config{}
	cfg.NATS.URL = ns.URL
	cfg.Ops.Listen = "off"
	cfg.NATS.Stream = config.Stream{Name: "SLIPWAY", Replicas: 1, MaxAge: time.Hour, DuplicateWindow: 10 * time.Minute}
	d := runProbe(t, cfg)
	ctx := t.Context()

	deployments := []string{events.SubjectPrefix + ".deployment.>"}
	fail := func(context.Context, events.Event) error { return bus.Permanent(errors.New("bad image reference")) }
	strict, err := d.Consume(ctx, bus.ConsumerConfig{Durable: "strict", FilterSubjects: deployments, Logger: d.Log}, fail)
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Stop()
	lenient, err := d.Consume(ctx, bus.ConsumerConfig{Durable: "lenient", FilterSubjects: deployments, Logger: d.Log},
		func(context.Context, events.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer lenient.Stop()

	pub := bus.NewPublisher(d.JS, d.Stream)
	for _, id := range []string{"1", "2"} {
		ev, err := events.New(ctx, events.Spec{
			ID: events.ID("test", id), Type: events.TypeDeploymentFailed, Source: "/slipway/test", Environment: "prd",
			Data: events.Deployment{Cluster: "c", Environment: "prd", AppID: "/a", Reason: id},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	counter, err := dlqmetrics.Counter(d.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "two dead letters counted", func() bool {
		n, ok := gauge(t, d.Metrics, "strict")
		return ok && n == 2 && testutil.ToFloat64(counter.WithLabelValues("strict")) == 2
	})
	if n := testutil.ToFloat64(counter.WithLabelValues("lenient")); n != 0 {
		t.Errorf("slipway_dead_lettered_total{consumer=lenient} = %v, want 0", n)
	}
	if n, err := testutil.GatherAndCount(d.Metrics, "slipway_dead_lettered_total"); err != nil || n != 2 {
		t.Errorf("%d slipway_dead_lettered_total series, %v; want one per consumer from the start", n, err)
	}
	if _, ok := gauge(t, d.Metrics, "lenient"); ok {
		t.Error("a consumer without dead letters has a slipway_dead_letters series")
	}

	// Redriven or purged: the consumer's gauge goes back to 0, it does not
	// vanish.
	dlq, err := d.JS.Stream(ctx, bus.DeadLetterStreamName(d.Stream))
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if n, ok := gauge(t, d.Metrics, "strict"); !ok || n != 0 {
		t.Errorf("slipway_dead_letters{consumer=strict} = %v (present %t) after a purge, want 0", n, ok)
	}
}
