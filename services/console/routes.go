package console

import (
	"context"

	"github.com/labstack/echo/v4"
)

// start starts what the views read from: the recent events (events.go).
func (s *server) start(ctx context.Context) error {
	return s.startLive(ctx)
}

// routes mounts the views: e for what needs no login (static assets), g for
// everything behind it.
func (s *server) routes(e *echo.Echo, g *echo.Group) {
	s.mountViews(e, g) // views.go: layout, matrix, image pages, inventory
	s.mountLive(g)     // live.go: timeline, audit, approvals, dead letters, actions
}
