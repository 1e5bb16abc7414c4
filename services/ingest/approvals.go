package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/ingest/auth"
)

// Routes of the approval API (contract: GET /approvals, POST
// /approvals/{id}/approve and /reject, with an approver's bearer token).
const (
	routeApprovals = "/approvals"
	routeApproval  = "/approvals/:id"
	routeApprove   = "/approvals/:id/approve"
	routeReject    = "/approvals/:id/reject"
)

// maxDecisionBody bounds the body of approve and reject, {"reason": "…"}.
const maxDecisionBody = 64 << 10

// storeTimeout bounds a request's reads and writes of the approvals bucket.
const storeTimeout = 5 * time.Second

// DecisionBody is the optional JSON body of POST /approvals/{id}/approve
// and /reject.
type DecisionBody struct {
	Reason string `json:"reason"`
}

// DecisionConflict is the body of the 409 of POST /approvals/{id}/approve
// and /reject: the approval was decided before (by anyone, the caller
// too) or expired, and nothing changed. Error is the contract's message;
// the other fields are the record's, named as in GET /approvals.
type DecisionConflict struct {
	Error     string         `json:"error"`
	ID        string         `json:"id"`
	State     approval.State `json:"state"` // granted, rejected or expired
	DecidedBy string         `json:"decidedBy,omitempty"`
	DecidedAt time.Time      `json:"decidedAt,omitzero"`
	Reason    string         `json:"reason,omitempty"`
	ExpiresAt time.Time      `json:"expiresAt,omitzero"`
}

// approvalAPI serves the approval routes. Approvers are identified by their
// bearer token alone; the token is never logged.
type approvalAPI struct {
	names  []string // approvers' names, index-aligned with tokens
	tokens []string
	// groups are each approver's configured groups, by name: with the
	// name, what roles and a rule's approval groups know them by.
	groups map[string][]string
	// policy holds the roles. When any is configured, deciding needs
	// approve in the approval's environment and the lists show only what
	// the approver may view; without roles any approver of the promotion
	// decides and sees every approval, as before roles existed.
	policy *access.Policy
	// store is nil when no approver is configured (then every request is
	// 401 before it would be needed).
	store   *approval.Store
	pub     *bus.Publisher
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

// newApprovalAPI checks the approvers and, when there are any, opens the
// approvals bucket (create-or-update: the promoter opens it too, and either
// may start first).
func newApprovalAPI(d app.Deps, h *handler) (*approvalAPI, error) {
	if err := checkApprovers(d.Config); err != nil {
		return nil, err
	}
	a := &approvalAPI{pub: h.pub, log: h.log, metrics: h.metrics, now: h.now,
		groups: map[string][]string{}, policy: access.New(d.Config)}
	for _, ap := range d.Config.Approvers {
		a.groups[ap.Name] = ap.Groups
		if ap.Token == "" {
			continue // a Slack-only approver: never match an empty bearer
		}
		a.names = append(a.names, ap.Name)
		a.tokens = append(a.tokens, ap.Token)
	}
	if len(a.tokens) == 0 {
		return a, nil
	}
	if err := a.openStore(d); err != nil {
		return nil, err
	}
	return a, nil
}

// openStore opens the approvals bucket (creating it if no promoter has yet)
// once: for the approval API or Slack's buttons, whichever needs it first.
func (a *approvalAPI) openStore(d app.Deps) error {
	if a.store != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	store, err := approval.Open(ctx, d.JS, d.Config.NATS.Stream.Replicas)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	a.store = store
	return nil
}

// checkApprovers refuses a token shared by two approvers: a decision would
// be recorded under whichever name comes first. (Tokens are compared here,
// before anything runs, not per request: nothing is timed.)
func checkApprovers(cfg *config.Config) error {
	seen := map[string]int{}
	for i, ap := range cfg.Approvers {
		if ap.Token == "" {
			continue
		}
		if j, dup := seen[ap.Token]; dup {
			return fmt.Errorf("approvers[%d].token: the same token as approvers[%d] (%s); each approver needs their own", i, j, cfg.Approvers[j].Name)
		}
		seen[ap.Token] = i
	}
	return nil
}

func (a *approvalAPI) mount(e *echo.Echo) {
	e.GET(routeApprovals, a.list)
	e.GET(routeApproval, a.get)
	e.POST(routeApprove, func(c echo.Context) error { return a.decide(c, true) })
	e.POST(routeReject, func(c echo.Context) error { return a.decide(c, false) })
}

// approver returns the name of the approver whose token the request bears,
// or "" (no header, another scheme, an unknown token). The token is
// compared with every configured one in constant time.
func (a *approvalAPI) approver(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return ""
	}
	if i := auth.Match(token, a.tokens); i >= 0 {
		return a.names[i]
	}
	return ""
}

// identity is approver name as the roles know them, acting through via.
func (a *approvalAPI) identity(name, via string) access.Identity {
	return access.Identity{Name: name, Groups: a.groups[name], Via: via}
}

// mayView reports whether who may see the approvals of environment env:
// always without roles.
func (a *approvalAPI) mayView(who access.Identity, env string) bool {
	return !a.policy.Configured() || a.policy.Can(who, access.View, env)
}

// errMayNotApprove is the refusal of a decision by an approver whose roles
// do not let them approve in the approval's environment.
var errMayNotApprove = errors.New("may not approve in the environment")

// answer writes the reply and counts it.
func (a *approvalAPI) answer(c echo.Context, action string, code int, body any) error {
	a.metrics.approvals.WithLabelValues(action, strconv.Itoa(code)).Inc()
	if code == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
	}
	return c.JSON(code, body)
}

// unauthorized is the 401 of the contract: no detail for the caller; the
// log says which route, never what was presented.
func (a *approvalAPI) unauthorized(c echo.Context, action string) error {
	a.log.InfoContext(c.Request().Context(), "approval request without a valid approver token",
		"action", action, "remote", c.RealIP(), "hasAuthorization", c.Request().Header.Get("Authorization") != "")
	return a.answer(c, action, http.StatusUnauthorized, errorBody{"unauthorized"})
}

// list serves GET /approvals[?state=pending|granted|rejected|expired]:
// every record the approver may view (every one without roles), newest
// first, each with its state as of now.
func (a *approvalAPI) list(c echo.Context) error {
	const action = "list"
	name := a.approver(c.Request())
	if name == "" {
		return a.unauthorized(c, action)
	}
	who := a.identity(name, events.ViaAPI)
	var filter approval.State
	if s := c.QueryParam("state"); s != "" {
		st, err := approval.ParseState(s)
		if err != nil {
			return a.answer(c, action, http.StatusBadRequest, errorBody{err.Error()})
		}
		filter = st
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	all, err := a.store.List(ctx)
	if err != nil {
		return a.unavailable(c, action, err)
	}
	now := a.now()
	out := make([]approval.Record, 0, len(all))
	for _, r := range all {
		r.State = r.StateAt(now)
		if (filter == "" || r.State == filter) && a.mayView(who, r.Environment) {
			out = append(out, r)
		}
	}
	return a.answer(c, action, http.StatusOK, out)
}

// get serves GET /approvals/{id}: one record with its state as of now; 404
// for one of an environment the approver may not view.
func (a *approvalAPI) get(c echo.Context) error {
	const action = "get"
	name := a.approver(c.Request())
	if name == "" {
		return a.unauthorized(c, action)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	r, err := a.store.Get(ctx, c.Param("id"))
	if err == nil && !a.mayView(a.identity(name, events.ViaAPI), r.Environment) {
		// As if it did not exist: an approval of an environment the
		// approver may not view is none of their business.
		err = approval.ErrNotFound
	}
	if errors.Is(err, approval.ErrNotFound) {
		return a.answer(c, action, http.StatusNotFound, errorBody{"no such approval"})
	}
	if err != nil {
		return a.unavailable(c, action, err)
	}
	r.State = r.StateAt(a.now())
	return a.answer(c, action, http.StatusOK, r)
}

// decide serves POST /approvals/{id}/approve and /reject. The decision is
// recorded first (compare-and-set: of two approvers at once one wins, the
// other gets 409), then its event is published and acknowledged, then the
// answer is 200 with the record. When the event cannot be stored the answer
// is 503: the decision stands, and the same request by the same approver
// publishes it again (Decide treats it as a repeat). Once the event is
// stored, any further decision, the same one by the same approver too, is
// 409 with the decision as it stands (DecisionConflict).
func (a *approvalAPI) decide(c echo.Context, grant bool) error {
	action := "reject"
	if grant {
		action = "approve"
	}
	name := a.approver(c.Request())
	if name == "" {
		return a.unauthorized(c, action)
	}
	body, err := readBody(c, maxDecisionBody)
	if errors.Is(err, errTooLarge) {
		return a.answer(c, action, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("body larger than %d bytes", maxDecisionBody)})
	}
	if err != nil {
		return a.answer(c, action, http.StatusBadRequest, errorBody{"reading body: " + err.Error()})
	}
	var in DecisionBody
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return a.answer(c, action, http.StatusBadRequest, errorBody{`body must be {"reason": "..."}: ` + err.Error()})
		}
	}

	id := c.Param("id")
	ctx, span := serverSpan(c, c.Request().URL.Path, attribute.String("slipway.approval", id), attribute.String("slipway.approver", name))
	defer func() { answered(span, c.Response().Status); span.End() }()

	r, err := a.decideAndPublish(ctx, id, a.identity(name, events.ViaAPI), grant, in.Reason)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return a.answer(c, action, http.StatusNotFound, errorBody{"no such approval"})
	case errors.Is(err, errMayNotApprove):
		return a.answer(c, action, http.StatusForbidden, errorBody{fmt.Sprintf("%s may not approve in %s", name, r.Environment)})
	case errors.Is(err, approval.ErrNotAllowed):
		return a.answer(c, action, http.StatusForbidden, errorBody{fmt.Sprintf("%s is not an approver of promotion %s", name, r.Promotion)})
	case errors.Is(err, approval.ErrDecided):
		return a.answer(c, action, http.StatusConflict, DecisionConflict{Error: decidedMessage(r),
			ID: r.ID, State: r.State, DecidedBy: r.DecidedBy, DecidedAt: r.DecidedAt, Reason: r.Reason})
	case errors.Is(err, approval.ErrExpired):
		return a.answer(c, action, http.StatusConflict, DecisionConflict{Error: expiredMessage(r),
			ID: r.ID, State: approval.Expired, ExpiresAt: r.ExpiresAt})
	case errors.Is(err, approval.ErrNoEvent):
		return a.answer(c, action, http.StatusInternalServerError, errorBody{"the decision is recorded, but " + err.Error()})
	case errors.Is(err, approval.ErrEventNotStored):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
		return a.answer(c, action, http.StatusServiceUnavailable, errorBody{"the decision is recorded but its event could not be stored; repeat the same request"})
	case err != nil:
		return a.unavailable(c, action, err)
	}
	return a.answer(c, action, http.StatusOK, r)
}

// decideAndPublish records the decision of approver who on approval id and
// publishes its event (approval.granted or approval.rejected), for every
// way a decision is taken: the approval API and Slack's buttons. With roles
// configured, who must have approve in the approval's environment. The
// decision is a compare-and-set (of two approvers at once one wins), then
// the event is published and acknowledged.
//
// Errors, with the record when there is one: approval.ErrNotFound,
// errMayNotApprove, ErrNotAllowed, ErrDecided, ErrExpired (nothing was
// written);
// approval.ErrNoEvent and ErrEventNotStored (the decision stands, and the
// same call again publishes it: Decide treats it as a repeat); any other
// error is the approvals store's. ctx carries the caller's span.
func (a *approvalAPI) decideAndPublish(ctx context.Context, id string, who access.Identity, grant bool, reason string) (approval.Record, error) {
	span := trace.SpanFromContext(ctx)
	name := who.Name
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if a.policy.Configured() {
		// A record's environment never changes: reading it before the
		// compare-and-set of the decision leaves no gap to exploit.
		r, err := a.store.Get(sctx, id)
		if err != nil {
			return r, err
		}
		if !a.policy.Can(who, access.Approve, r.Environment) {
			a.log.InfoContext(ctx, "approval decision refused: no approve role in the environment", "approval", id,
				"environment", r.Environment, "approver", name, "via", who.Via)
			return r, fmt.Errorf("approval %s: %s in %s: %w", id, name, r.Environment, errMayNotApprove)
		}
	}
	r, err := a.store.DecideAs(sctx, id, who, grant, reason, a.now())
	cancel()
	switch {
	case errors.Is(err, approval.ErrNotAllowed):
		a.log.InfoContext(ctx, "approval decision refused: not an approver of the promotion", "approval", id, "promotion", r.Promotion, "approver", name)
		return r, err
	case errors.Is(err, approval.ErrNotFound), errors.Is(err, approval.ErrDecided), errors.Is(err, approval.ErrExpired):
		return r, err
	case err != nil:
		span.SetStatus(codes.Error, "approvals store")
		return r, err
	}

	actx, cancel := context.WithTimeout(ctx, publishTimeout+storeTimeout)
	r, e, err := a.store.Announce(actx, a.pub, r)
	cancel()
	switch {
	case errors.Is(err, approval.ErrNoEvent): // a record the promoter wrote without what an event needs
		span.SetStatus(codes.Error, "decision event")
		a.log.ErrorContext(ctx, "approval decided, but its event cannot be built", "approval", id, "error", err)
		return r, err
	case errors.Is(err, approval.ErrEventNotStored):
		span.SetStatus(codes.Error, "publish")
		a.log.WarnContext(ctx, "approval decided, but its event was not stored; the same request publishes it", "approval", id, "approver", name, "error", err)
		return r, err
	case err != nil:
		// ErrNotMarked: the event is stored, the decision complete. A
		// repeat publishes the event again under the same id (dropped by
		// JetStream within its duplicate window), and the promoter's sweep
		// marks it.
		a.log.WarnContext(ctx, "approval decision event stored, but not marked so in the record", "approval", id, "error", err)
		r.EventPending = false
	}
	a.log.InfoContext(ctx, "approval decided", "approval", id, "promotion", r.Promotion, "decision", string(r.State),
		"approver", name, "via", who.Via, "repeat", r.Repeat, "event", e.ID())
	return r, nil
}

// decidedMessage says who decided a decided approval, and when.
func decidedMessage(r approval.Record) string {
	msg := fmt.Sprintf("already %s by %s", r.State, r.DecidedBy)
	if !r.DecidedAt.IsZero() {
		msg += " at " + r.DecidedAt.UTC().Format(time.RFC3339)
	}
	return msg
}

// expiredMessage says when an expired approval expired.
func expiredMessage(r approval.Record) string {
	msg := "expired"
	if !r.ExpiresAt.IsZero() {
		msg += " at " + r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return msg
}

// unavailable is the answer when the approvals bucket cannot be reached.
func (a *approvalAPI) unavailable(c echo.Context, action string, err error) error {
	a.log.WarnContext(c.Request().Context(), "approvals store unavailable", "action", action, "error", err)
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	return a.answer(c, action, http.StatusServiceUnavailable, errorBody{"approvals are unavailable, retry later"})
}
