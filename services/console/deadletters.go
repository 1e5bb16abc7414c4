package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
)

// errForbidden marks a refusal for lack of permission (403).
var errForbidden = errors.New("forbidden")

// deadLetterRow is one dead letter as the list shows it.
type deadLetterRow struct {
	bus.DeadLetter
	Environment string
	// CanRedrive: the user may operate in its environment.
	CanRedrive bool
}

type deadLettersData struct {
	// Forbidden, when set, is why the user may not see dead letters at
	// all.
	Forbidden string
	Rows      []deadLetterRow
	Flash     []string
	Error     string
}

// deadLetterData is one dead letter's page.
type deadLetterData struct {
	deadLetterRow
	// Headers are the message's headers, sorted; Body its data, indented
	// when it is JSON.
	Headers [][2]string
	Body    string
}

// operator reports whether the user may operate in some environment: dead
// letters are the operators' (the "operators only").
func (s *server) operator(id access.Identity) bool {
	return len(s.policy.Environments(id, access.Operate, s.configuredEnvs())) > 0
}

// forbidOperators answers a user who operates nowhere with the dead
// letters' 403 page.
func (s *server) forbidOperators(c echo.Context) error {
	return s.render(c, http.StatusForbidden, "deadletters", deadLettersData{
		Forbidden: "Dead letters are for operators: you may not operate in any environment."})
}

func (s *server) deadLetterStream() string { return bus.DeadLetterStreamName(s.streamName()) }

// deadLettersPage serves GET /deadletters: the dead letters of the
// environments the user may view, newest first.
func (s *server) deadLettersPage(c echo.Context) error {
	id := s.user(c).Identity
	if !s.operator(id) {
		return s.forbidOperators(c)
	}
	d := deadLettersData{Flash: c.QueryParams()["flash"]}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	list, err := bus.ListDeadLetters(ctx, s.deps.JS, s.deadLetterStream())
	if err != nil {
		s.log.Warn("dead letters unavailable", "error", err)
		d.Error = "The dead letters cannot be read right now; retry later."
		return s.render(c, http.StatusServiceUnavailable, "deadletters", d)
	}
	for _, dl := range slices.Backward(list) {
		if row, ok := s.deadLetterRow(id, dl); ok {
			d.Rows = append(d.Rows, row)
		}
	}
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]any{"deadLetters": d.Rows})
	}
	return s.render(c, http.StatusOK, "deadletters", d)
}

// deadLetterRow is dl as id sees it; ok is false when id may not view its
// environment.
func (s *server) deadLetterRow(id access.Identity, dl bus.DeadLetter) (deadLetterRow, bool) {
	env := dl.Environment()
	if !s.policy.Can(id, access.View, env) {
		return deadLetterRow{}, false
	}
	return deadLetterRow{DeadLetter: dl, Environment: env, CanRedrive: s.policy.Can(id, access.Operate, env)}, true
}

// deadLetterPage serves GET /deadletters/{seq}: one dead letter with its
// headers and its body.
func (s *server) deadLetterPage(c echo.Context) error {
	id := s.user(c).Identity
	if !s.operator(id) {
		return s.forbidOperators(c)
	}
	seq, err := strconv.ParseUint(c.Param("seq"), 10, 64)
	if err != nil || seq == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "a dead letter's sequence is a positive number")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	dl, err := bus.GetDeadLetter(ctx, s.deps.JS, s.deadLetterStream(), seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no dead letter %d (redriven, or never one)", seq))
	}
	if err != nil {
		s.log.Warn("dead letter unavailable", "seq", seq, "error", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the dead letters cannot be read right now; retry later")
	}
	row, ok := s.deadLetterRow(id, dl)
	if !ok {
		return s.render(c, http.StatusForbidden, "deadletters", deadLettersData{
			Forbidden: fmt.Sprintf("Dead letter %d is of an environment you may not view.", seq)})
	}
	d := deadLetterData{deadLetterRow: row, Body: string(dl.Data)}
	for k, vs := range dl.Header {
		for _, v := range vs {
			d.Headers = append(d.Headers, [2]string{k, v})
		}
	}
	sort.Slice(d.Headers, func(i, j int) bool { return d.Headers[i][0] < d.Headers[j][0] })
	var pretty bytes.Buffer
	if json.Indent(&pretty, dl.Data, "", "  ") == nil {
		d.Body = pretty.String()
	}
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]any{"deadLetter": row, "headers": dl.Header})
	}
	return s.render(c, http.StatusOK, "deadletter", d)
}

// redriveDeadLetters serves POST /deadletters/{seq}/redrive and, with
// seq[] (one or many), POST /deadletters/redrive. Each dead letter is
// redriven on its own, through actions.Redrive (announced first, the user
// as actor, via console); the answer lists every outcome. When the user
// may redrive none of them, the answer is 403 and nothing changed.
func (s *server) redriveDeadLetters(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "unreadable form")
	}
	seqs := append(form["seq[]"], form["seq"]...)
	if p := c.Param("seq"); p != "" {
		seqs = []string{p}
	}
	seqs = slices.DeleteFunc(seqs, func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(seqs) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "select at least one dead letter")
	}
	who := s.user(c).Identity
	reason := strings.TrimSpace(form.Get("reason"))
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout*time.Duration(min(len(seqs), 10)))
	defer cancel()
	var results []string
	forbidden := 0
	for _, v := range seqs {
		seq, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil || seq == 0 {
			results = append(results, fmt.Sprintf("%q: not a dead letter's sequence", v))
			continue
		}
		out, err := s.redrive(ctx, who, seq, reason)
		if errors.Is(err, errForbidden) {
			forbidden++
		}
		results = append(results, redriveText(seq, out, err))
	}
	if forbidden == len(seqs) {
		if wantsJSON(c) {
			return c.JSON(http.StatusForbidden, map[string]any{"error": strings.Join(results, "; ")})
		}
		return s.render(c, http.StatusForbidden, "deadletters", deadLettersData{Forbidden: strings.Join(results, "; ")})
	}
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]any{"results": results})
	}
	return c.Redirect(http.StatusSeeOther, "/deadletters?"+url.Values{"flash": results}.Encode())
}

// redrive redrives dead letter seq as who, who must operate in its
// environment (else errForbidden, and nothing is announced nor changed).
func (s *server) redrive(ctx context.Context, who access.Identity, seq uint64, reason string) (actions.RedriveOutcome, error) {
	dl, err := bus.GetDeadLetter(ctx, s.deps.JS, s.deadLetterStream(), seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return actions.RedriveOutcome{}, fmt.Errorf("%w: %d", actions.ErrNoDeadLetter, seq)
	}
	if err != nil {
		return actions.RedriveOutcome{}, err
	}
	if env := dl.Environment(); !s.policy.Can(who, access.Operate, env) {
		return actions.RedriveOutcome{DeadLetter: dl}, fmt.Errorf("%w: you may not operate in %s", errForbidden, env)
	}
	req := actions.Request{ID: actions.NewID(), Action: events.ActionRedrive, Actor: who.Name, Via: events.ViaConsole,
		Target: events.ActionTarget{Sequence: seq}, Reason: reason}
	out, err := actions.Redrive(ctx, s.deps.JS, s.streamName(), bus.NewPublisher(s.deps.JS, s.streamName()), req, s.now())
	if out.Event.ID() != "" {
		s.log.Info("console: dead letter redrive", "seq", seq, "actor", who.Name, "result", out.Result, "event", out.Event.ID(), "error", err)
	}
	return out, err
}

// redriveText says what a redrive did, in a line.
func redriveText(seq uint64, out actions.RedriveOutcome, err error) string {
	switch {
	case out.Result == actions.Redriven:
		return fmt.Sprintf("%d: redriven: event %s back on %s", seq, out.DeadLetter.EventID, out.DeadLetter.Subject)
	case out.Result == actions.Kept && out.NotBefore.IsZero():
		return fmt.Sprintf("%d: kept: the event stream still knows event %s (its duplicate window); redrive again later", seq, out.DeadLetter.EventID)
	case out.Result == actions.Kept:
		return fmt.Sprintf("%d: kept: the event stream still knows event %s (its duplicate window); redrive again after %s",
			seq, out.DeadLetter.EventID, when(out.NotBefore))
	case errors.Is(err, errForbidden), errors.Is(err, actions.ErrNoDeadLetter):
		return fmt.Sprintf("%d: %v", seq, err)
	case err != nil && out.Event.ID() == "":
		return fmt.Sprintf("%d: not redriven, nothing announced: %v", seq, err)
	case err != nil:
		return fmt.Sprintf("%d: failed: %v", seq, err)
	}
	return fmt.Sprintf("%d: %s", seq, out.Result)
}
