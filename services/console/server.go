package console

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/services/console/auth"
)

// server is the console's state: what it reads from, who is asking, and
// what they may do.
type server struct {
	cfg    *config.Config
	deps   app.Deps
	log    *slog.Logger
	now    func() time.Time
	auth   *auth.Authenticator
	policy *access.Policy
	// recent is the recent-event store (events.go), live the hub of the
	// live streams (sse.go); both are started by startLive.
	recent *eventStore
	live   *hub
	// approvalStore is opened on first use (approvals.go).
	approvalsOnce sync.Mutex
	approvalStore *approval.Store
	// closers run when the console stops (consumers, watchers).
	closers []func()
}

func newServer(ctx context.Context, d app.Deps, log *slog.Logger, now func() time.Time) (*server, error) {
	a, err := auth.New(ctx, auth.Options{Config: d.Config, JS: d.JS, Log: log, Now: now, Health: d.Health})
	if err != nil {
		return nil, err
	}
	s := &server{cfg: d.Config, deps: d, log: log, now: now, auth: a, policy: a.Policy()}
	if err := s.start(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// handler is the console's HTTP surface: health and metrics, the login
// endpoints, and every view behind the login.
func (s *server) handler() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorPage(e.DefaultHTTPErrorHandler)
	health.Mount(e, s.deps.Health, s.deps.Metrics)
	if s.cfg.Ops.Pprof { // the process's profiles, where its metrics are
		health.MountPprof(e)
	}
	s.auth.Mount(e)
	g := e.Group("", s.auth.Require())
	s.routes(e, g)
	return e
}

func (s *server) authMode() string { return s.auth.Mode() }

func (s *server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}
