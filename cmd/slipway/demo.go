package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/platform/telemetry"
)

// demoOptions tune `slipway demo`; the zero value is not useful, see
// defaultDemoOptions.
type demoOptions struct {
	// IngestListen is ingest's address; empty: 127.0.0.1:8080 if free,
	// else a free port.
	IngestListen string
	// ConsoleListen is the console's address; empty: 127.0.0.1:8090 if
	// free, else a free port.
	ConsoleListen string
	// ApprovalPause is how long the demo waits before it approves the prd
	// promotion in the release manager's name: time to press Approve in
	// the console instead.
	ApprovalPause time.Duration
	// DeployDuration is how long the emulated Marathon takes to start new
	// tasks.
	DeployDuration time.Duration
	// BrokenTimeout is /dev/web's slipway.timeout: how long the deployer
	// waits for the broken image before it rolls back.
	BrokenTimeout time.Duration
	// StepTimeout bounds each wait of the scenario.
	StepTimeout time.Duration
	// Exit ends the demo after the scenario instead of waiting for ctx.
	Exit bool
	// Log, if set, receives the services' logs from LogLevel up.
	Log io.Writer
	// LogLevel is the least level logged (default: info; the command
	// logs errors only).
	LogLevel slog.Level
}

func defaultDemoOptions() demoOptions {
	return demoOptions{
		ApprovalPause:  20 * time.Second,
		DeployDuration: 1500 * time.Millisecond,
		BrokenTimeout:  8 * time.Second,
		StepTimeout:    2 * time.Minute,
		LogLevel:       slog.LevelError,
	}
}

func demoCmd() *cobra.Command {
	opts := defaultDemoOptions()
	cmd := &cobra.Command{
		Use:   "demo [--pause 20s] [--exit]",
		Short: "Run a self-contained demo: registries, Marathon emulators and all services in process",
		Long: "Run Slipway end to end with no configuration, no network and no Docker: an embedded\n" +
			"NATS server, three in-process registries (dev, tst, prd), two emulated Marathon clusters\n" +
			"with sample apps, a Slack stand-in, the four services and the web console (open to anyone:\n" +
			"console.auth.none). It pushes a sample image, waits --pause for you to approve its promotion\n" +
			"to prd in the console (then approves it itself), pushes a broken image to show the rollback, and prints the\n" +
			"notifier's Slack messages as they are posted; then it keeps running (until Ctrl-C) so that\n" +
			"you can push your own images or change an app by hand and see the drift. OTEL_* configure\n" +
			"its traces as they do those of `slipway run`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts.Log = cmd.ErrOrStderr()
			_, err := runDemoTraced(ctx, cmd.OutOrStdout(), opts)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // Ctrl-C during the scenario
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&opts.ApprovalPause, "pause", opts.ApprovalPause, "wait this long before approving the prd promotion")
	cmd.Flags().BoolVar(&opts.Exit, "exit", false, "exit after the scenario instead of running until Ctrl-C")
	cmd.Flags().StringVar(&opts.IngestListen, "ingest-listen", "", "ingest's address (default 127.0.0.1:8080, or a free port if that is taken)")
	cmd.Flags().StringVar(&opts.ConsoleListen, "console-listen", "", "the console's address (default 127.0.0.1:8090, or a free port if that is taken)")
	cmd.Flags().DurationVar(&opts.DeployDuration, "deploy-duration", opts.DeployDuration, "how long an emulated Marathon deployment takes")
	return cmd
}

// runDemoTraced runs the demo with tracing set up as `slipway run` sets it
// up: OTEL_* configure the export, and without an exporter the events
// still carry their traceparent. Spans still held are flushed at the end.
func runDemoTraced(ctx context.Context, out io.Writer, opts demoOptions) (*demoResult, error) {
	shutdown, err := telemetry.SetupTracing(ctx, "slipway")
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil && opts.Log != nil {
			fmt.Fprintf(opts.Log, "flushing traces failed: %v\n", err)
		}
	}()
	return runDemo(ctx, out, opts)
}

// freeAddr returns preferred if it can be listened on, else a free port on
// 127.0.0.1.
func freeAddr(preferred string) (string, error) {
	if preferred != "" {
		if ln, err := net.Listen("tcp", preferred); err == nil {
			addr := ln.Addr().String()
			_ = ln.Close()
			return addr, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}
