package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/telemetry"
)

// Binary describes a service's own binary for its --help and --version.
type Binary struct {
	// About is a paragraph on what the service does.
	About string
	// Version is what the binary's main.version was linked with
	// (-ldflags "-X main.version=v1.2.3"); "" lets buildinfo find it.
	Version string
}

// Main is the whole main function of a service's own binary
// (services/<name>/cmd/<name> --config FILE). It exits with 0 after
// --help or --version, 2 when used wrongly, 1 when the service fails.
func Main(s Service, b Binary) {
	buildinfo.SetVersion(b.Version)
	path, err := parseArgs(s.Name(), b.About, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errVersion):
		os.Exit(0)
	case err != nil:
		os.Exit(2)
	}
	cfg, err := config.Load(path, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := RunProcess(context.Background(), cfg, s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name(), err)
		os.Exit(1)
	}
}

// errVersion is parseArgs' answer to --version, once it printed it.
var errVersion = errors.New("version printed")

// parseArgs reads a service binary's command line and returns the
// configuration file's path. It prints --help (with about) and --version on
// stdout and returns flag.ErrHelp or errVersion; a usage error it prints on
// stderr with a hint to --help, and returns.
func parseArgs(name, about string, args []string, stdout, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", "slipway.yaml", "configuration file")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {} // printed below, on stdout for --help
	fs.SetOutput(stderr) // where flag reports a bad flag
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q: %s takes none", fs.Arg(0), name)
		fmt.Fprintln(stderr, err)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "Usage: %s [--config FILE]\n\n%s\n\nFlags:\n", name, about)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return "", err
	case err != nil:
		fmt.Fprintf(stderr, "see '%s --help'\n", name)
		return "", err
	case *version:
		fmt.Fprintln(stdout, name, buildinfo.Version())
		return "", errVersion
	}
	return *path, nil
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
