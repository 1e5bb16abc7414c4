package console

import (
	"context"

	"github.com/labstack/echo/v4"
)

// startLive starts following the event stream.
func (s *server) startLive(ctx context.Context) error { return nil }

// mountLive mounts the event-driven views and the actions.
func (s *server) mountLive(g *echo.Group) {}
