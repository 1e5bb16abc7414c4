// Package health serves /healthz, /readyz and /metrics for every service.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check returns nil when what it checks is ready.
type Check func(ctx context.Context) error

// Checker runs the readiness checks of a process.
type Checker struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// NewChecker returns a Checker with no checks (always ready).
func NewChecker() *Checker { return &Checker{checks: map[string]Check{}} }

// Add registers a named readiness check.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// Ready runs every check and returns the failures by name.
func (c *Checker) Ready(ctx context.Context) map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	failed := map[string]string{}
	for name, check := range c.checks {
		if err := check(ctx); err != nil {
			failed[name] = err.Error()
		}
	}
	return failed
}

// Outcomes is a readiness check fed by the outcomes of something a process
// does but cannot probe on its own, such as storing an event on NATS servers
// it does not run: it fails from a failure until the next success. A
// failure counts for at most hold, because a load balancer that stops
// sending traffic to a process that is not ready leaves it nothing to
// succeed with; after hold, traffic comes back and finds out again.
type Outcomes struct {
	what string
	hold time.Duration
	now  func() time.Time

	mu  sync.Mutex
	err error // the last outcome, when it failed
	at  time.Time
}

// NewOutcomes returns an Outcomes for what (it names it in the reason).
func NewOutcomes(what string, hold time.Duration) *Outcomes {
	return &Outcomes{what: what, hold: hold, now: time.Now}
}

// Observe records an outcome: nil is a success.
func (o *Outcomes) Observe(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.err, o.at = err, o.now()
}

// Check is the readiness check: the last failure, while it is the last
// outcome and younger than hold.
func (o *Outcomes) Check(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		return nil
	}
	age := o.now().Sub(o.at)
	if age >= o.hold {
		return nil
	}
	return fmt.Errorf("%s failed %s ago, and has not succeeded since: %w", o.what, age.Round(time.Second), o.err)
}

// Mount adds GET /healthz (the process is alive), GET /readyz (every check
// passes; 503 with the failures otherwise) and GET /metrics (Prometheus text
// from gatherer) to e.
func Mount(e *echo.Echo, c *Checker, gatherer prometheus.Gatherer) {
	e.GET("/healthz", func(ctx echo.Context) error {
		return ctx.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(ctx echo.Context) error {
		cctx, cancel := context.WithTimeout(ctx.Request().Context(), 2*time.Second)
		defer cancel()
		if failed := c.Ready(cctx); len(failed) > 0 {
			return ctx.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
		}
		return ctx.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
}

// MountPprof adds Go's runtime profiles under /debug/pprof/ (the index,
// cmdline, profile, symbol, trace and every named profile such as heap and
// allocs) to e. Only with ops.pprof: nothing mounts it by default.
func MountPprof(e *echo.Echo) {
	g := e.Group("/debug/pprof")
	g.GET("/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	g.GET("/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	g.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	g.Any("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	g.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	// pprof.Index serves the named profiles (heap, allocs, goroutine…)
	// from the last path element.
	g.GET("/:name", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
}

// Server serves the health endpoints on a listener of their own.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen binds addr for the health endpoints (and the runtime profiles
// when profiling is set); Serve serves them.
func Listen(addr string, c *Checker, gatherer prometheus.Gatherer, profiling bool, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	Mount(e, c, gatherer)
	if profiling {
		MountPprof(e)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}, log: log}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends.
func (s *Server) Serve(ctx context.Context) {
	s.log.Info("health endpoints listening", "addr", s.ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("health endpoints stopped", "error", err)
	}
}
