package ingest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// routeAction is the action API (contract: POST /actions/{action}, with an
// approver's bearer token, on the approval API's listener).
const routeAction = "/actions/:action"

// maxActionBody bounds the body of an action request.
const maxActionBody = 64 << 10

// maxIdempotencyKey bounds an Idempotency-Key header, in bytes.
const maxIdempotencyKey = 200

// ActionBody is the JSON body of POST /actions/{action}; each action reads
// what it needs: rollback and redeploy cluster and appId (rollback may name
// the image to go back to), promote image and, when several rules promote
// it, promotion, redrive the dead letter's sequence. Reason is the actor's
// own words, for the audit.
type ActionBody struct {
	Cluster   string `json:"cluster"`
	AppID     string `json:"appId"`
	Image     string `json:"image"`
	Promotion string `json:"promotion"`
	Sequence  uint64 `json:"sequence"`
	Reason    string `json:"reason"`
}

// ActionAccepted is the body of the 202 of POST /actions/{action}: the id
// of the action.requested event that announced it. A redrive, carried out
// at once, adds its result (redriven, or kept while the event stream still
// knows the event's id, with when it can take effect).
type ActionAccepted struct {
	ActionID  string    `json:"actionId"`
	Result    string    `json:"result,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
}

// actionAPI serves the action routes: a person's manual rollback,
// redeploy, promote or redrive, announced as action.requested (actions)
// once they may. The deployer and the promoter carry out what they
// announce; a redrive is carried out here, right after its announcement.
type actionAPI struct {
	cfg    *config.Config
	js     jetstream.JetStream
	stream string
	pub    *bus.Publisher
	// approvals authenticates (the approvers' tokens) and holds the roles.
	approvals *approvalAPI
}

func newActionAPI(d app.Deps, a *approvalAPI) *actionAPI {
	stream := cmp.Or(d.Stream, bus.DefaultStream)
	return &actionAPI{cfg: d.Config, js: d.JS, stream: stream, pub: bus.NewPublisher(d.JS, stream), approvals: a}
}

func (x *actionAPI) mount(e *echo.Echo) {
	e.POST(routeAction, x.act)
}

// answer writes the reply and counts it.
func (x *actionAPI) answer(c echo.Context, action string, code int, body any) error {
	x.approvals.metrics.actions.WithLabelValues(action, strconv.Itoa(code)).Inc()
	if code == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
	}
	if code == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	}
	return c.JSON(code, body)
}

var knownActions = []string{events.ActionRollback, events.ActionRedeploy, events.ActionPromote, events.ActionRedrive}

// act serves POST /actions/{action}. The answer is 202 with the action's
// event id once the event is stored; 401 without a valid token, 403 when
// the approver may not operate in the target's environment, 404 for an
// unknown action, cluster, rule or dead letter, 400 for a request the
// action cannot take, 503 when the event could not be stored (repeat the
// request with the same Idempotency-Key: it is announced once).
func (x *actionAPI) act(c echo.Context) error {
	action := c.Param("action")
	if !slices.Contains(knownActions, action) {
		return x.answer(c, "unknown", http.StatusNotFound, errorBody{fmt.Sprintf("no action %q (one of %s)", action, strings.Join(knownActions, ", "))})
	}
	name := x.approvals.approver(c.Request())
	if name == "" {
		x.approvals.log.InfoContext(c.Request().Context(), "action request without a valid approver token",
			"action", action, "remote", c.RealIP(), "hasAuthorization", c.Request().Header.Get("Authorization") != "")
		return x.answer(c, action, http.StatusUnauthorized, errorBody{"unauthorized"})
	}
	who := x.approvals.identity(name, events.ViaAPI)
	key := c.Request().Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.IndexFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return x.answer(c, action, http.StatusBadRequest, errorBody{fmt.Sprintf("Idempotency-Key must be at most %d printable characters without spaces", maxIdempotencyKey)})
	}
	in, err := x.body(c)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		return x.answer(c, action, code, errorBody{err.Error()})
	}

	ctx, span := serverSpan(c, c.Request().URL.Path, attribute.String("slipway.action", action), attribute.String("slipway.actor", name))
	defer func() { answered(span, c.Response().Status); span.End() }()
	log := x.approvals.log

	target, code, err := x.target(ctx, action, in)
	if err != nil {
		if code == http.StatusServiceUnavailable {
			log.WarnContext(ctx, "action target could not be read", "action", action, "error", err)
			return x.answer(c, action, code, errorBody{"dead letters are unavailable, retry later"})
		}
		return x.answer(c, action, code, errorBody{err.Error()})
	}
	if x.approvals.policy.Configured() && !x.approvals.policy.Can(who, access.Operate, target.Environment) {
		log.InfoContext(ctx, "action refused: no operate role in the environment", "action", action,
			"environment", target.Environment, "actor", name, "via", who.Via)
		return x.answer(c, action, http.StatusForbidden, errorBody{fmt.Sprintf("%s may not operate in %s", name, target.Environment)})
	}

	req := actions.Request{ID: actions.NewID(), Action: action, Actor: name, Via: who.Via, Target: target, Reason: in.Reason}
	if key != "" {
		// Keys are the client's: two approvers may well pick the same.
		req.ID = events.ID("api", name, key)
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout+storeTimeout)
	defer cancel()
	now := x.approvals.now()
	var out ActionAccepted
	if action == events.ActionRedrive {
		var res actions.RedriveOutcome
		res, err = actions.Redrive(pctx, x.js, x.stream, x.pub, req, now)
		out = ActionAccepted{ActionID: res.Event.ID(), Result: res.Result, NotBefore: res.NotBefore}
		if err != nil && res.Result == actions.Failed {
			span.SetStatus(codes.Error, "redrive")
			log.WarnContext(ctx, "redrive announced but not carried out", "action", out.ActionID, "sequence", target.Sequence, "error", err)
			return x.answer(c, action, http.StatusServiceUnavailable,
				errorBody{fmt.Sprintf("the redrive is announced (%s) but failed; repeat the same request: %v", out.ActionID, err)})
		}
	} else {
		var e events.Event
		e, err = actions.Publish(pctx, x.pub, req, now)
		out.ActionID = e.ID()
	}
	switch {
	case errors.Is(err, actions.ErrNoDeadLetter):
		return x.answer(c, action, http.StatusNotFound, errorBody{fmt.Sprintf("no dead letter %d", target.Sequence)})
	case errors.Is(err, actions.ErrInvalid):
		return x.answer(c, action, http.StatusBadRequest, errorBody{err.Error()})
	case err != nil:
		span.SetStatus(codes.Error, "publish")
		log.WarnContext(ctx, "action not announced: its event was not stored", "action", action, "actor", name, "error", err)
		return x.answer(c, action, http.StatusServiceUnavailable, errorBody{"the action could not be announced; repeat the same request"})
	}
	log.InfoContext(ctx, "action requested", "action", action, "actor", name, "via", who.Via, "environment", target.Environment,
		"cluster", target.Cluster, "appId", target.AppID, "image", target.Image, "promotion", target.Promotion,
		"sequence", target.Sequence, "event", out.ActionID, "result", out.Result)
	return x.answer(c, action, http.StatusAccepted, out)
}

// body reads the request's ActionBody; an empty body is an empty one.
func (x *actionAPI) body(c echo.Context) (ActionBody, error) {
	var in ActionBody
	raw, err := readBody(c, maxActionBody)
	if errors.Is(err, errTooLarge) {
		return in, fmt.Errorf("body larger than %d bytes: %w", maxActionBody, err)
	}
	if err != nil {
		return in, fmt.Errorf("reading body: %w", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return in, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf(`body must be {"cluster", "appId", "image", "promotion", "sequence", "reason"} as the action needs: %w`, err)
	}
	return in, nil
}

// target finds what action is about, and so the environment whose operate
// permission it needs: a workload's cluster's environment (rollback,
// redeploy), the promotion rule's target (promote), the dead letter's
// event's environment (redrive). The code is the answer's when err is set.
func (x *actionAPI) target(ctx context.Context, action string, in ActionBody) (events.ActionTarget, int, error) {
	switch action {
	case events.ActionRollback, events.ActionRedeploy:
		if in.Cluster == "" {
			return events.ActionTarget{}, http.StatusBadRequest, fmt.Errorf("%s needs the cluster and the workload (appId)", action)
		}
		if !slices.ContainsFunc(x.cfg.Clusters, func(cl config.Cluster) bool { return cl.Name == in.Cluster }) {
			return events.ActionTarget{}, http.StatusNotFound, fmt.Errorf("no cluster %q", in.Cluster)
		}
		t, err := actions.WorkloadTarget(x.cfg, in.Cluster, in.AppID)
		if err != nil {
			return t, http.StatusBadRequest, err
		}
		if action == events.ActionRollback {
			t.Image = in.Image
		}
		return t, 0, nil
	case events.ActionPromote:
		if in.Image == "" {
			return events.ActionTarget{}, http.StatusBadRequest, errors.New("promote needs the image (registry/repository:tag[@digest] in the rule's from environment)")
		}
		if in.Promotion != "" && !slices.ContainsFunc(x.cfg.Promotions, func(p config.Promotion) bool { return p.Name == in.Promotion }) {
			return events.ActionTarget{}, http.StatusNotFound, fmt.Errorf("no promotion rule %q", in.Promotion)
		}
		t, err := actions.PromoteTarget(x.cfg, in.Image, in.Promotion)
		if err != nil {
			return t, http.StatusBadRequest, err
		}
		return t, 0, nil
	}
	// redrive
	if in.Sequence == 0 {
		return events.ActionTarget{}, http.StatusBadRequest, errors.New("redrive needs the dead letter's sequence")
	}
	gctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	d, err := bus.GetDeadLetter(gctx, x.js, bus.DeadLetterStreamName(x.stream), in.Sequence)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return events.ActionTarget{}, http.StatusNotFound, fmt.Errorf("no dead letter %d", in.Sequence)
	}
	if err != nil {
		return events.ActionTarget{}, http.StatusServiceUnavailable, err
	}
	return events.ActionTarget{Environment: d.Environment(), Sequence: in.Sequence, EventID: d.EventID}, 0, nil
}
