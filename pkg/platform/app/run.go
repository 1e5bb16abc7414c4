package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/dlqmetrics"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/platform/natsconn"
)

// Run connects to NATS (or starts the embedded server), makes sure the
// stream exists, and runs the services until ctx is cancelled or one fails.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, services ...Service) error {
	if len(services) == 0 {
		return errors.New("no service to run")
	}
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.Name()
	}
	conn, err := natsconn.Connect(ctx, cfg.NATS, log, "slipway "+fmt.Sprint(names))
	if err != nil {
		return err
	}
	defer conn.Close()

	if err := ensureStream(ctx, conn, cfg, log); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	streamName := cfg.NATS.Stream.Name
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		dlqmetrics.NewCollector(conn.JS, streamName, log))
	checker := health.NewChecker()
	checker.Add("nats", conn.Ready)
	// The embedded server's JetStream can stop storing while connected and
	// while the stream is there (a full disk); natsconn says why and brings
	// it back.
	checker.Add("storage", conn.Storage)
	checker.Add("stream", func(ctx context.Context) error {
		_, err := conn.JS.Stream(ctx, streamName)
		return err
	})
	deps := Deps{Config: cfg, Log: log, JS: conn.JS, Stream: streamName, Metrics: reg, Health: checker}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if addr := opsListen(cfg.Ops.Listen, services); addr != "" {
		srv, err := health.Listen(addr, checker, reg, cfg.Ops.Pprof, log)
		if err != nil {
			return fmt.Errorf("ops.listen: %w", err)
		}
		wg.Go(func() { srv.Serve(ctx) })
	}
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := deps
			d.Log = log.With("service", s.Name())
			d.Log.Info("service starting")
			if err := s.Run(ctx, d); err != nil {
				cancel(fmt.Errorf("%s: %w", s.Name(), err))
				return
			}
			d.Log.Info("service stopped")
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// DefaultOpsListen is where a process without ingest serves /healthz,
// /readyz and /metrics (9464 is the port OpenTelemetry's Prometheus
// exporter uses by convention).
const DefaultOpsListen = ":9464"

func opsListen(configured string, services []Service) string {
	switch configured {
	case "off":
		return ""
	case "":
		for _, s := range services {
			if h, ok := s.(HealthServer); ok && h.ServesHealth() {
				return ""
			}
		}
		return DefaultOpsListen
	}
	return configured
}

// ensureStream retries until NATS answers: at start-up the servers may
// still be coming up (compose, DC/OS), and failing fast would only make the
// scheduler restart us in a loop.
func ensureStream(ctx context.Context, conn *natsconn.Conn, cfg *config.Config, log *slog.Logger) error {
	delay := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := bus.EnsureStream(actx, conn.JS, cfg.StreamConfig())
		cancel()
		if err == nil {
			logStreamBounds(ctx, conn.JS, s, cfg.NATS.Stream, log)
			return nil
		}
		// The client gives up for good on repeated authorization errors
		// (a wrong password, a revoked credential): waiting cannot help,
		// and the reason is in the connection's last error, not in err.
		if conn.NC.IsClosed() {
			if last := conn.NC.LastError(); last != nil {
				return fmt.Errorf("nats: %w", last)
			}
			return fmt.Errorf("nats: %w", err)
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			// The server answered and said no (bad limits, replicas > nodes):
			// retrying will not help.
			return err
		}
		log.Warn("waiting for jetstream", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// logStreamBounds says what the streams' size bounds are: a default one is
// smaller on a small disk, and a configured one is not applied where the
// server has less storage than the streams already reserve.
func logStreamBounds(ctx context.Context, js jetstream.JetStream, events jetstream.Stream, want config.Stream, log *slog.Logger) {
	dlq, err := js.Stream(ctx, bus.DeadLetterStreamName(want.Name))
	if err != nil {
		log.Warn("dead-letter stream not found after it was made", "err", err)
		return
	}
	for _, s := range []struct {
		key    string
		stream jetstream.Stream
		want   config.ByteSize
	}{{"maxBytes", events, want.MaxBytes}, {"deadLetterMaxBytes", dlq, want.DeadLetterMaxBytes}} {
		c := s.stream.CachedInfo().Config
		got := config.ByteSize(c.MaxBytes)
		log.Info("stream ready", "stream", c.Name, "maxBytes", got.String(), "maxAge", c.MaxAge)
		if s.want != 0 && s.want != got {
			log.Warn("nats.stream."+s.key+" not applied: the NATS server cannot reserve that much storage now; the stream keeps its bound",
				"stream", c.Name, "configured", s.want.String(), "maxBytes", got.String())
		}
	}
}
