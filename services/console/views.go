package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

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

// liveFragment is the query value (?fragment=live) that asks a page for
// its live part alone: the template "live" the page defines, rendered
// from the same data with the same permission filtering. The page's
// script swaps it in when the event stream says something changed.
const liveFragment = "live"

// matrixEventTypes are the events after which what the matrix and the
// "where it runs" of an image page show may have changed (the inventory
// is written before the event that reports it); "deployment.*" is every
// deployment event.
var matrixEventTypes = []string{"deployment.*", "drift.detected", "compliance.violated", "deployment.refused", "image.promoted", "image.pushed"}

// liveRegion is what a page's script needs to keep its live part
// current, passed as data- attributes (the pages run no inline script).
type liveRegion struct {
	// Fragment is the URL of the live part: the page's own URL and query
	// with ?fragment=live.
	Fragment string
	// Stream is the live stream the script follows, Types the event types
	// (space-separated) that make it fetch Fragment again.
	Stream string
	Types  string
}

// liveRegionOf is the live region of the request's page. Its stream is
// limited to env when that is set (the user's visible environments limit
// it anyway), and starts after the newest event the console has read: it
// is taken before the page reads what it shows, so that an event in
// between is replayed rather than missed.
func (s *server) liveRegionOf(c echo.Context, env string) liveRegion {
	q := c.Request().URL.Query()
	q.Set("fragment", liveFragment)
	stream := url.Values{}
	if s.recent != nil {
		stream.Set("after", strconv.FormatUint(s.recent.lastSeq(), 10))
	}
	if env != "" {
		stream.Set("env", env)
	}
	return liveRegion{
		Fragment: c.Request().URL.Path + "?" + q.Encode(),
		Stream:   "/timeline/stream?" + stream.Encode(),
		Types:    strings.Join(matrixEventTypes, " "),
	}
}

// renderView writes the page name, or with ?fragment=live only its live
// part; any other fragment is a bad request.
func (s *server) renderView(c echo.Context, name string, data any) error {
	switch f := c.QueryParam("fragment"); f {
	case "":
		return s.render(c, http.StatusOK, name, data)
	case liveFragment:
		return s.renderPart(c, http.StatusOK, name, liveFragment, data)
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "no fragment "+strconv.Quote(f)+" (the page has ?fragment="+liveFragment+")")
	}
}
