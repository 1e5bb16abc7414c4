package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/telemetry"
)

// Main is the whole main function of a service's own binary
// (services/<name>/cmd/<name> --config FILE).
func Main(s Service) {
	fs := flag.NewFlagSet(s.Name(), flag.ExitOnError)
	path := fs.String("config", "slipway.yaml", "configuration file")
	_ = fs.Parse(os.Args[1:])
	cfg, err := config.Load(*path, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := RunProcess(context.Background(), cfg, s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name(), err)
		os.Exit(1)
	}
}

// RunProcess sets up logging and tracing and runs services until SIGINT,
// SIGTERM or the end of ctx.
func RunProcess(ctx context.Context, cfg *config.Config, services ...Service) error {
	// Whatever a service, a library or the embedded NATS server logs or
	// fails with, the configuration's secrets do not reach the terminal.
	redactor := cfg.Redactor()
	log := telemetry.NewLogger(cfg.Log, redactor.Writer(os.Stderr))
	slog.SetDefault(log)
	shutdownTracing, err := telemetry.SetupTracing(ctx, processName(services))
	if err != nil {
		return err
	}
	defer func() {
		// Flush what the batcher holds, but do not hang on a collector that
		// is gone.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			log.Warn("flushing traces failed", "err", err)
		}
	}()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return redactor.Error(Run(ctx, cfg, log, services...))
}

// processName is the default service.name of a process running services:
// "slipway-ingest" for one, "slipway" for several.
func processName(services []Service) string {
	if len(services) == 1 {
		return "slipway-" + services[0].Name()
	}
	return "slipway"
}
