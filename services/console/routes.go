package console

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/services/console/auth"
)

// start starts what the views read from (placeholder until the views land).
func (s *server) start(ctx context.Context) error { return nil }

// routes mounts the views: e for what needs no login (static assets), g for
// everything behind it.
func (s *server) routes(e *echo.Echo, g *echo.Group) {
	g.GET("/", func(c echo.Context) error {
		u := auth.UserOf(c)
		return c.String(http.StatusOK, "Slipway console: "+u.Name)
	})
}
