package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
)

// action serves POST /actions/{rollback,redeploy,promote,redrive}: the
// target is checked against the configuration, the user must operate in
// its environment, and the action is announced (action.requested, actor
// the user, via console); a redrive is carried out right after. The
// answer links the timeline filtered on the action's id.
func (s *server) action(c echo.Context) error {
	name := c.Param("action")
	var target events.ActionTarget
	var err error
	switch name {
	case events.ActionRollback, events.ActionRedeploy:
		target, err = actions.WorkloadTarget(s.cfg, c.FormValue("cluster"), c.FormValue("appId"))
	case events.ActionPromote:
		target, err = actions.PromoteTarget(s.cfg, c.FormValue("image"), c.FormValue("promotion"))
	case events.ActionRedrive:
		return s.redriveAction(c)
	default:
		return echo.NewHTTPError(http.StatusNotFound, "no action "+name)
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	who := s.user(c).Identity
	if !s.policy.Can(who, access.Operate, target.Environment) {
		return echo.NewHTTPError(http.StatusForbidden, "you may not operate in "+target.Environment)
	}
	req := actions.Request{ID: actions.NewID(), Action: name, Actor: who.Name, Via: events.ViaConsole, Target: target,
		Reason: strings.TrimSpace(c.FormValue("reason"))}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	e, err := actions.Publish(ctx, bus.NewPublisher(s.deps.JS, s.streamName()), req, s.now())
	if err == nil {
		s.log.Info("console: action requested", "action", name, "actor", who.Name, "environment", target.Environment, "event", e.ID())
	}
	return s.actionAnswer(c, name, e, "requested", err)
}

// redriveAction is POST /actions/redrive (seq): the dead letters' redrive
// (deadletters.go), answered as the other actions are.
func (s *server) redriveAction(c echo.Context) error {
	seq, err := strconv.ParseUint(c.FormValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "redrive needs the dead letter's sequence (seq)")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	out, err := s.redrive(ctx, s.user(c).Identity, seq, strings.TrimSpace(c.FormValue("reason")))
	switch {
	case errors.Is(err, errForbidden):
		return echo.NewHTTPError(http.StatusForbidden, err.Error())
	case errors.Is(err, actions.ErrNoDeadLetter):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	return s.actionAnswer(c, events.ActionRedrive, out.Event, out.Result, err)
}

// actionAnswer answers an action announced as e (zero when it was not):
// 202 with its id and result for a script, else the timeline filtered on
// it.
func (s *server) actionAnswer(c echo.Context, name string, e events.Event, result string, err error) error {
	if errors.Is(err, actions.ErrInvalid) {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	if err != nil && e.ID() == "" {
		s.log.Warn("console: action not announced", "action", name, "error", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the action could not be announced; retry")
	}
	body := map[string]string{"id": e.ID(), "action": name, "result": result, "timeline": "/timeline?id=" + url.QueryEscape(e.ID())}
	if err != nil {
		body["error"] = err.Error()
	}
	if wantsJSON(c) {
		return c.JSON(http.StatusAccepted, body)
	}
	return c.Redirect(http.StatusSeeOther, body["timeline"])
}

// The "actions" partial (templates/partials/actions.html): the buttons of
// the manual actions, for the pages that show a workload or an image.
// Every page may include it once loadViews parses it with the layout
// (parsePartials); its data is an *actionsView, built per request because
// the buttons depend on who asks.
//
//go:embed templates/partials/*.html
var partialsFS embed.FS

// parsePartials adds the partials to t (a page's base, the layout).
func parsePartials(t *template.Template) (*template.Template, error) {
	return t.ParseFS(partialsFS, "templates/partials/*.html")
}

// actionsView is what the "actions" partial shows: a workload's rollback
// and redeploy (Cluster, AppID), an image's promotions (Image,
// Promotions), with the session's CSRF token.
type actionsView struct {
	CSRF           string
	Cluster, AppID string
	Image          string
	Promotions     []promotionChoice
	// Compact shows them as a menu (a matrix cell).
	Compact bool
}

// promotionChoice is a rule an image may be promoted by now.
type promotionChoice struct{ Name, To string }

// workloadActions are the buttons of appID on cluster, or nil when the
// user may not operate in its environment (or the cluster is unknown).
func (s *server) workloadActions(c echo.Context, cluster, appID string, compact bool) *actionsView {
	target, err := actions.WorkloadTarget(s.cfg, cluster, appID)
	u := s.user(c)
	if err != nil || !s.policy.Can(u.Identity, access.Operate, target.Environment) {
		return nil
	}
	return &actionsView{CSRF: u.CSRF, Cluster: target.Cluster, AppID: target.AppID, Compact: compact}
}

// promoteActions are the buttons that promote image (registry/
// repository:tag[@digest]) now: one per rule that promotes it to an
// environment the user may operate in; nil when there is none.
func (s *server) promoteActions(c echo.Context, image string, compact bool) *actionsView {
	u := s.user(c)
	v := &actionsView{CSRF: u.CSRF, Image: image, Compact: compact}
	for _, p := range s.cfg.Promotions {
		target, err := actions.PromoteTarget(s.cfg, image, p.Name)
		if err == nil && s.policy.Can(u.Identity, access.Operate, target.Environment) {
			v.Promotions = append(v.Promotions, promotionChoice{Name: p.Name, To: target.Environment})
		}
	}
	if len(v.Promotions) == 0 {
		return nil
	}
	return v
}
