package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// errorData is the error page's.
type errorData struct {
	Status         int
	Title, Message string
}

// errorPage answers a handler's error as a page in the layout when a
// browser navigates to one (a link to a page that is not there, a
// refusal); API paths and requests that accept JSON get next's answer
// ({"message": …}), which scripts and the CLI read.
func (s *server) errorPage(next echo.HTTPErrorHandler) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed || !wantsErrorPage(c.Request()) {
			next(err, c)
			return
		}
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			// Not a refusal but a failure: its text is for the log, not
			// for the page.
			s.log.Error("console: request failed", "path", c.Request().URL.Path, "err", err)
			he = echo.NewHTTPError(http.StatusInternalServerError, "Something went wrong; it has been logged.")
		}
		d := errorData{Status: he.Code, Title: http.StatusText(he.Code), Message: fmt.Sprint(he.Message)}
		if he.Code == http.StatusNotFound && errors.Is(err, echo.ErrNotFound) {
			d.Message = "There is no page at " + c.Request().URL.Path + "."
		}
		if d.Title == "" {
			d.Title = "Error"
		}
		if rerr := s.render(c, he.Code, "error", d); rerr != nil {
			next(err, c)
		}
	}
}

// wantsErrorPage: a request for a page (Accept text/html), not one of the
// API's or a script's asking for JSON.
func wantsErrorPage(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return !strings.HasPrefix(r.URL.Path, "/api/") && strings.Contains(accept, "text/html") &&
		!strings.Contains(accept, "application/json")
}
