package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/health"
)

// Defaults of ingest's configuration (contract).
const (
	DefaultListen       = ":8080"
	DefaultMaxBodyBytes = 1 << 20
)

// Routes. The token form exists for urlToken sources only; auth rejects it
// for the others.
const (
	route          = "/webhooks/:source"
	routeWithToken = "/webhooks/:source/:token"
)

// handler holds what every webhook request needs.
type handler struct {
	sources map[string]*source
	maxBody int64
	js      jetstream.JetStream
	pub     *bus.Publisher
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	// stored tells /readyz when events could not be stored lately: the
	// one sign of a NATS that cannot store that is not ours to watch.
	stored *health.Outcomes
}

// NewHandler checks the ingest configuration and returns the HTTP handler of
// the service: the webhook routes, the approval API (approvals.go), the
// action API (actions.go), Slack's buttons (slack.go; with a Slack
// receiver's signing secret only), /healthz, /readyz and /metrics. Errors name the configuration key at
// fault (ingest.sources[i]...). With approvers configured it opens (creates
// if need be) the approvals bucket.
func NewHandler(d app.Deps) (http.Handler, error) {
	if d.Config == nil {
		return nil, errors.New("ingest: no configuration")
	}
	if d.JS == nil {
		return nil, errors.New("ingest: no JetStream")
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}
	if d.Health == nil {
		d.Health = health.NewChecker()
	}
	cfg := d.Config.Ingest
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("ingest.maxBodyBytes must not be negative, not %d", cfg.MaxBodyBytes)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	sources, err := compileSources(d.Config)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, fmt.Errorf("ingest metrics: %w", err)
	}
	h := &handler{
		sources: sources,
		maxBody: cfg.MaxBodyBytes,
		js:      d.JS,
		pub:     bus.NewPublisher(d.JS, d.Stream),
		log:     d.Log,
		metrics: m,
		now:     time.Now,
		stored:  health.NewOutcomes("storing an event", storeFailureHold),
	}
	d.Health.Add("publish", h.stored.Check)
	approvals, err := newApprovalAPI(d, h)
	if err != nil {
		return nil, err
	}
	slack, err := newSlackInteractions(d, approvals)
	if err != nil {
		return nil, err
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = jsonErrors
	e.Use(requestLog(h.log), middleware.Recover())
	e.POST(route, h.webhook)
	e.POST(routeWithToken, h.webhook)
	approvals.mount(e)
	newActionAPI(d, approvals).mount(e)
	if slack != nil { // no Slack signing secret: no route (404)
		slack.mount(e)
	}
	health.Mount(e, d.Health, d.Metrics)
	if d.Config.Ops.Pprof {
		health.MountPprof(e)
	}
	return e, nil
}

// requestLog logs every request at debug level. It logs the route pattern
// and the source name, never the URL: a urlToken source's path is a secret.
// When debug is off it stays out of the way: echo's logger gathers every
// value (remote address, latency…) before it is asked to log them.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	logged := middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus:    true,
		LogMethod:    true,
		LogRoutePath: true,
		LogLatency:   true,
		LogRemoteIP:  true,
		HandleError:  true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			log.LogAttrs(c.Request().Context(), slog.LevelDebug, "http request",
				slog.String("method", v.Method), slog.String("route", v.RoutePath),
				slog.String("source", c.Param("source")), slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency), slog.String("remote", v.RemoteIP))
			return nil
		},
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withLog := logged(next)
		return func(c echo.Context) error {
			if !log.Enabled(c.Request().Context(), slog.LevelDebug) {
				return next(c)
			}
			return withLog(c)
		}
	}
}

// jsonErrors answers echo's own errors (404 no route, 405, a recovered
// panic) in the contract's shape, {"error": "..."}.
func jsonErrors(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError)
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, msg = he.Code, fmt.Sprint(he.Message)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.JSON(code, errorBody{msg})
}
