package console

import (
	"github.com/labstack/echo/v4"
)

// mountViews mounts the layout's assets (no login needed: they are the
// same for everyone) and the inventory's views: the release matrix, image
// pages and inventory search, each as HTML and as JSON under /api.
func (s *server) mountViews(e *echo.Echo, g *echo.Group) {
	e.GET("/static/:hash/*", pageViews.assets.serve)
	g.GET("/", s.matrixPage)
	g.GET("/api/matrix", s.matrixAPI)
	g.GET("/images/:digest", s.imagePage)
	g.GET("/api/images/:digest", s.imageAPI)
	g.GET("/inventory", s.inventoryPage)
	g.GET("/api/inventory", s.inventoryAPI)
}
