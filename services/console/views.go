package console

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// mountViews mounts the layout's assets (no login needed: they are the
// same for everyone) and the inventory's views: the release matrix, image
// pages and inventory search.
func (s *server) mountViews(e *echo.Echo, g *echo.Group) {
	e.GET("/static/:hash/*", pageViews.assets.serve)
	g.GET("/", s.matrixPage)
}

// matrixPage is the release matrix.
func (s *server) matrixPage(c echo.Context) error {
	return s.render(c, http.StatusOK, "matrix", nil)
}
