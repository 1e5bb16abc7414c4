package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/app"
)

// shutdownGrace is how long in-flight webhooks get to finish (and their
// events to be acked) once the service is asked to stop.
const shutdownGrace = 10 * time.Second

// Service is the ingest service, an app.Service.
type Service struct {
	// Listening, when set, is called with the bound address once the
	// server accepts connections (tests, and the demo, listen on port 0).
	Listening func(addr net.Addr)
}

// New returns the ingest service.
func New() *Service { return &Service{} }

var _ app.Service = (*Service)(nil)

// Name is how --only selects the service.
func (*Service) Name() string { return "ingest" }

// ServesHealth: /healthz, /readyz and /metrics are on ingest's listener.
func (*Service) ServesHealth() bool { return true }

// Run serves HTTP on ingest.listen until ctx is cancelled, then stops
// accepting, lets in-flight requests finish, and returns nil.
func (s *Service) Run(ctx context.Context, d app.Deps) error {
	h, err := NewHandler(d)
	if err != nil {
		return err
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	tuneGC(log)
	addr := d.Config.Ingest.Listen
	if addr == "" {
		addr = DefaultListen
	}
	var tlsCfg *tls.Config
	if t := d.Config.Ingest.TLS; t != nil {
		if tlsCfg, err = serverTLS(t, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ingest.listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// Requests keep ctx's values but not its cancellation: on shutdown
		// an in-flight webhook still gets its acks and its answer.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			served <- srv.ServeTLS(ln, "", "") // the certificate comes from TLSConfig
			return
		}
		served <- srv.Serve(ln)
	}()
	log.Info("ingest listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil)
	if s.Listening != nil {
		s.Listening(ln.Addr())
	}

	select {
	case err := <-served:
		return fmt.Errorf("ingest: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("ingest: shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ingest: %w", err)
	}
	log.Info("ingest stopped")
	return nil
}

// gcPercent is the garbage collector's target while ingest runs, unless
// GOGC says otherwise. A webhook leaves about 10 KB of garbage and ingest's
// live heap is small (2 MB), so at Go's default of 100 the collector ran
// every 200 webhooks or so and took a quarter of ingest's CPU. At 150 it
// runs a third less often: about 20 % less CPU per webhook, for the 1 to
// 2 MiB of resident memory the allocation cuts had saved (see
// docs/benchmarks.md).
const gcPercent = 150

// tuneGC sets gcPercent unless the operator set GOGC.
func tuneGC(log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(gcPercent)
	log.Debug("garbage collector target set", "gogc", gcPercent)
}
