package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/services/console/auth"
)

// mountViews mounts the layout's assets and the inventory's views.
func (s *server) mountViews(e *echo.Echo, g *echo.Group) {
	g.GET("/", func(c echo.Context) error {
		return c.String(http.StatusOK, "Slipway console: "+auth.UserOf(c).Name)
	})
}
