// Package app is what every Slipway service runs on: the loaded
// configuration, a logger, the NATS connection and stream, and a Prometheus
// registry, handed to each service's Run.
package app

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/dlqmetrics"
	"github.com/slipway-cd/slipway/pkg/platform/health"
)

// Deps is what a service gets from the process it runs in.
type Deps struct {
	Config *config.Config
	Log    *slog.Logger
	// JS is the JetStream context; the stream (and its dead-letter stream)
	// already exist when Run is called.
	JS jetstream.JetStream
	// Stream is the configured stream name.
	Stream string
	// Metrics is the process's registry: register collectors on it, and
	// serve it at /metrics (health.Mount).
	Metrics *prometheus.Registry
	// Health tells /readyz whether NATS is connected, the stream present
	// and (embedded server) able to store; a service adds its own checks,
	// and one that serves HTTP mounts it with health.Mount.
	Health *health.Checker
}

// Consume runs h on the durable consumer cfg describes (bus.Consume), on
// the process's stream unless cfg names another, and counts what it
// dead-letters in slipway_dead_lettered_total{consumer}. Services consume
// through it so that every consumer is counted, and counted the same way.
func (d Deps) Consume(ctx context.Context, cfg bus.ConsumerConfig, h bus.Handler) (*bus.Consumer, error) {
	if cfg.Stream == "" {
		cfg.Stream = d.Stream
	}
	var counter *prometheus.CounterVec
	if d.Metrics != nil {
		var err error
		if counter, err = dlqmetrics.Counter(d.Metrics); err != nil {
			return nil, err
		}
		next := cfg.OnDeadLetter
		cfg.OnDeadLetter = func(dl bus.DeadLetter) {
			counter.WithLabelValues(dl.Consumer).Inc()
			if next != nil {
				next(dl)
			}
		}
	}
	c, err := bus.Consume(ctx, d.JS, cfg, h)
	if err == nil && counter != nil {
		// A series from the start, so that increase() sees the first one.
		counter.WithLabelValues(cfg.Durable)
	}
	return c, err
}

// Service is one of Slipway's services (ingest, promoter, deployer, notifier).
type Service interface {
	// Name is how --only selects it.
	Name() string
	// CheckConfig checks the service's part of the file (config.Section):
	// the process checks the parts of the services it runs when it loads
	// the file (Load(path, Sections(services...)...)).
	config.Section
	// Run works until ctx is cancelled, then stops cleanly and returns nil;
	// an error return stops the whole process.
	Run(ctx context.Context, d Deps) error
}

// HealthServer is implemented by services that serve /healthz, /readyz and
// /metrics on their own listener (ingest), so the process needs no other.
type HealthServer interface {
	ServesHealth() bool
}

// Sections are services as the config.Sections whose parts a file must get
// right for them to run.
func Sections(services ...Service) []config.Section {
	out := make([]config.Section, len(services))
	for i, s := range services {
		out[i] = s
	}
	return out
}
