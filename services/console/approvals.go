package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
)

// storeTimeout bounds one request's work on the approvals bucket and the
// stream.
const storeTimeout = 10 * time.Second

// approvalRow is one approval as the queue shows it.
type approvalRow struct {
	approval.Record
	State approval.State
	// Age is how long it has waited; Soak how long ago the source image
	// was pushed, when the recent events know.
	Age, Soak time.Duration
	// CanDecide: the user may approve in its environment.
	CanDecide bool
}

type approvalsData struct {
	Pending, Decided []approvalRow
	Flash            []string
	Error            string
}

// approvals returns the store, opened on first use (the bucket is the
// promoter's and ingest's as much as the console's: whichever starts
// first creates it).
func (s *server) approvals(ctx context.Context) (*approval.Store, error) {
	s.approvalsOnce.Lock()
	defer s.approvalsOnce.Unlock()
	if s.approvalStore == nil {
		st, err := approval.Open(ctx, s.deps.JS, s.cfg.NATS.Stream.Replicas)
		if err != nil {
			return nil, err
		}
		s.approvalStore = st
	}
	return s.approvalStore, nil
}

// approvalsPage serves GET /approvals: pending first, then the decided
// ones, of the environments the user may view.
func (s *server) approvalsPage(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	d := approvalsData{Flash: c.QueryParams()["flash"]}
	st, err := s.approvals(ctx)
	var recs []approval.Record
	if err == nil {
		recs, err = st.List(ctx)
	}
	if err != nil {
		s.log.Warn("approvals unavailable", "error", err)
		d.Error = "The approvals cannot be read right now; retry later."
		return s.render(c, http.StatusServiceUnavailable, "approvals", d)
	}
	id := s.user(c).Identity
	now := s.now()
	for _, r := range recs {
		if !s.policy.Can(id, access.View, r.Environment) {
			continue
		}
		row := approvalRow{Record: r, State: r.StateAt(now), Age: now.Sub(r.RequestedAt).Round(time.Second),
			CanDecide: s.policy.Can(id, access.Approve, r.Environment)}
		if pushed := s.pushedAt(r.From); !pushed.IsZero() {
			row.Soak = now.Sub(pushed).Round(time.Second)
		}
		if row.State == approval.Pending {
			d.Pending = append(d.Pending, row)
		} else {
			d.Decided = append(d.Decided, row)
		}
	}
	return s.render(c, http.StatusOK, "approvals", d)
}

// pushedAt is when the recent events saw ref pushed, or zero.
func (s *server) pushedAt(ref events.ImageRef) time.Time {
	for _, e := range s.recent.ByDigest(ref.Digest) {
		if events.Type(e.Type()) != events.TypeImagePushed {
			continue
		}
		if p, err := events.DataAs[events.ImagePushed](e); err == nil && p.Environment == ref.Environment {
			return p.PushedAt
		}
	}
	return time.Time{}
}

// decideApproval serves POST /approvals/decide: ids (one or many), a
// decision (approve or reject) and one reason. Each approval is decided
// on its own; the answer lists every outcome. A request of a single id
// that the user may not decide is refused with 403 (and nothing written).
func (s *server) decideApproval(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "unreadable form")
	}
	ids := slices.DeleteFunc(append(form["ids[]"], form["ids"]...), func(s string) bool { return strings.TrimSpace(s) == "" })
	grant := false
	switch form.Get("decision") {
	case "approve", "grant":
		grant = true
	case "reject":
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "decision must be approve or reject")
	}
	if len(ids) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "select at least one approval")
	}
	reason := strings.TrimSpace(form.Get("reason"))
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout*time.Duration(min(len(ids), 10)))
	defer cancel()
	st, err := s.approvals(ctx)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the approvals cannot be reached; retry later")
	}
	who := s.user(c).Identity
	who.Via = events.ViaConsole
	var results []string
	forbidden := 0
	for _, id := range ids {
		msg, denied := s.decideOne(ctx, st, who, id, grant, reason)
		if denied {
			forbidden++
		}
		results = append(results, msg)
	}
	if forbidden == len(ids) {
		return echo.NewHTTPError(http.StatusForbidden, strings.Join(results, "; "))
	}
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]any{"results": results})
	}
	q := url.Values{"flash": results}
	return c.Redirect(http.StatusSeeOther, "/approvals?"+q.Encode())
}

// decideOne decides one approval as who, through the same path as the
// approval API: the store's compare-and-set, then the decision's event.
func (s *server) decideOne(ctx context.Context, st *approval.Store, who access.Identity, id string, grant bool, reason string) (msg string, forbidden bool) {
	r, err := st.Get(ctx, id)
	if err != nil {
		return fmt.Sprintf("%s: %v", id, err), errors.Is(err, approval.ErrNotFound)
	}
	if !s.policy.Can(who, access.Approve, r.Environment) {
		return fmt.Sprintf("%s: you may not decide approvals into %s", id, r.Environment), true
	}
	r, err = st.DecideAs(ctx, id, who, grant, reason, s.now())
	if err != nil {
		return fmt.Sprintf("%s: %v", id, err), errors.Is(err, approval.ErrNotAllowed)
	}
	if _, _, err := st.Announce(ctx, bus.NewPublisher(s.deps.JS, s.streamName()), r); err != nil && !errors.Is(err, approval.ErrNotMarked) {
		s.log.Warn("approval decided, but its event was not stored; deciding again publishes it", "approval", id, "error", err)
		return fmt.Sprintf("%s: %s, but its event was not stored yet: decide again to announce it", id, r.State), false
	}
	s.log.Info("approval decided", "approval", id, "decision", string(r.State), "by", who.Name, "via", who.Via)
	return fmt.Sprintf("%s: %s", id, r.State), false
}

// wantsJSON: the script asks for JSON; a form post gets a page.
func wantsJSON(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get("Accept"), "application/json")
}
