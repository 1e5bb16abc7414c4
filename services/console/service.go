package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// DefaultListen is the console's address when console.listen is empty.
const DefaultListen = ":8090"

// shutdownGrace is how long open requests get once the console stops;
// live streams are ended by the stop itself.
const shutdownGrace = 5 * time.Second

// Service is the console, an app.Service.
type Service struct {
	// Listening, when set, is called with the bound address once the
	// console accepts connections (tests and the demo listen on port 0).
	Listening func(addr net.Addr)
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// New returns the console service.
func New() *Service { return &Service{} }

var _ app.Service = (*Service)(nil)

// Name is how --only selects the service.
func (*Service) Name() string { return "console" }

// ServesHealth: /healthz, /readyz and /metrics are on the console's
// listener, so a process running it needs no ops listener of its own.
func (*Service) ServesHealth() bool { return true }

// CheckConfig checks the console's part of the file.
func (*Service) CheckConfig(cfg *config.Config, p *config.Problems) { checkConfig(cfg, p) }

// Run serves the console on console.listen until ctx is cancelled.
func (s *Service) Run(ctx context.Context, d app.Deps) error {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "console")
	var login config.Problems
	checkLogin(d.Config, &login)
	if len(login) > 0 {
		return fmt.Errorf("console: %w", login)
	}
	srv, err := newServer(ctx, d, log, s.now)
	if err != nil {
		return err
	}
	defer srv.close()

	addr := d.Config.Console.Listen
	if addr == "" {
		addr = DefaultListen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console.listen: %w", err)
	}
	hs := &http.Server{
		Handler:           srv.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// Requests (live streams among them) end when the console stops.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("console listening", "addr", ln.Addr().String(), "auth", srv.authMode())
	if s.Listening != nil {
		s.Listening(ln.Addr())
	}
	select {
	case err := <-served:
		return fmt.Errorf("console: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("console: shutdown: %w", err)
	}
	<-served
	log.Info("console stopped")
	return nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
