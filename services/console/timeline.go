package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
)

// Timeline sizes.
const (
	// timelineRows is how many events the timeline page lists by default,
	// maxTimelineRows how many ?limit= may ask for.
	timelineRows, maxTimelineRows = 100, 2000
)

// eventFilter is what the timeline, its live stream and /api/events
// select on; an empty field selects everything.
type eventFilter struct {
	// Type is a short type (image.pushed) or a family of them
	// (approval.*).
	Env, Type, Repository string
	// ID selects one event and those it caused (an action's id, say).
	ID string
}

func (s *server) eventFilter(c echo.Context) (eventFilter, error) {
	f := eventFilter{Env: strings.TrimSpace(c.QueryParam("env")), Repository: strings.TrimSpace(c.QueryParam("repository")),
		ID: strings.TrimSpace(c.QueryParam("id"))}
	if t := strings.TrimSpace(c.QueryParam("type")); strings.HasSuffix(t, ".*") {
		// A family of types (approval.*): what a page that shows one
		// kind of thing follows live.
		f.Type = t
	} else if t != "" {
		typ, err := events.ParseType(t)
		if err != nil {
			return f, echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		f.Type = typ.Short()
	}
	return f, nil
}

func (f eventFilter) matches(e *stored) bool {
	return (f.Env == "" || e.env == f.Env) &&
		(f.Type == "" || e.typ == f.Type || strings.HasSuffix(f.Type, ".*") && strings.HasPrefix(e.typ, strings.TrimSuffix(f.Type, "*"))) &&
		(f.Repository == "" || slices.Contains(e.repos, f.Repository)) &&
		(f.ID == "" || e.ev.ID() == f.ID || events.CausationOf(e.ev) == f.ID)
}

// query is the filter as a query string (the stream's URL, links).
func (f eventFilter) query() string {
	q := make([]string, 0, 4)
	for _, kv := range [][2]string{{"env", f.Env}, {"type", f.Type}, {"repository", f.Repository}, {"id", f.ID}} {
		if kv[1] != "" {
			q = append(q, kv[0]+"="+url.QueryEscape(kv[1]))
		}
	}
	return strings.Join(q, "&")
}

// eventRow is one event as the timeline shows it and /api/events and the
// live stream send it.
type eventRow struct {
	Seq          uint64    `json:"seq"`
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Environment  string    `json:"environment"`
	Subject      string    `json:"subject,omitempty"`
	Source       string    `json:"source"`
	Time         time.Time `json:"time"`
	CausationID  string    `json:"causationId,omitempty"`
	Repositories []string  `json:"repositories,omitempty"`
	Digests      []string  `json:"digests,omitempty"`
	Summary      string    `json:"summary"`
	// Parts is the summary with its image references apart, as the
	// page shows them.
	Parts []summaryPart   `json:"parts"`
	Data  json.RawMessage `json:"data,omitempty"`
}

func rowOf(e *stored) eventRow {
	r := eventRow{Seq: e.seq, ID: e.ev.ID(), Type: e.typ, Environment: e.env, Subject: e.ev.Subject(), Source: e.ev.Source(),
		Time: e.ev.Time().UTC(), CausationID: events.CausationOf(e.ev), Repositories: e.repos, Digests: e.digests}
	line := summarize(e.ev)
	r.Summary, r.Parts = line.String(), line
	if d := e.ev.Data(); json.Valid(d) {
		r.Data = d
	}
	return r
}

// summaryPart is a piece of an event's one-line summary: text, or an
// image reference the page renders compactly (ref).
type summaryPart struct {
	Text string    `json:"text,omitempty"`
	Ref  *imageRef `json:"ref,omitempty"`
	// NameOnly shows Ref without its digest: the line names it already.
	NameOnly bool `json:"nameOnly,omitempty"`
}

// summaryLine builds a summary from its parts.
type summaryLine []summaryPart

func (l *summaryLine) text(format string, args ...any) *summaryLine {
	*l = append(*l, summaryPart{Text: fmt.Sprintf(format, args...)})
	return l
}

func (l *summaryLine) ref(v any) *summaryLine {
	r := refOf(v)
	*l = append(*l, summaryPart{Ref: &r})
	return l
}

// refName is ref for an image whose digest the line names already (a
// promotion's copy).
func (l *summaryLine) refName(v any) *summaryLine {
	l.ref(v)
	(*l)[len(*l)-1].NameOnly = true
	return l
}

// String is the summary as plain text, each reference in full.
func (l summaryLine) String() string {
	var b strings.Builder
	for _, p := range l {
		if p.Ref != nil {
			b.WriteString(p.Ref.Full)
		} else {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// summarize says in a line what an event is about.
func summarize(e events.Event) summaryLine {
	l := &summaryLine{}
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		if d, err := events.DataAs[events.ImagePushed](e); err == nil {
			return *l.ref(d.Ref()).text(" pushed to %s%s", d.Environment, by(d.Actor))
		}
	case events.TypeApprovalRequested:
		if d, err := events.DataAs[events.ApprovalRequested](e); err == nil {
			return *l.text("approval %s asked: %s ", d.ApprovalID, d.From.Environment).ref(d.From).text(" → %s (%s)", d.To.Environment, d.Promotion)
		}
	case events.TypeApprovalGranted, events.TypeApprovalRejected:
		if d, err := events.DataAs[events.ApprovalDecision](e); err == nil {
			verb := "granted"
			if events.Type(e.Type()) == events.TypeApprovalRejected {
				verb = "rejected"
			}
			return *l.text("approval %s %s%s%s%s", d.ApprovalID, verb, by(d.By), via(d.Via), because(d.Reason))
		}
	case events.TypeImagePromoted:
		if d, err := events.DataAs[events.ImagePromoted](e); err == nil {
			return *l.ref(d.From).text(" promoted to %s ", d.To.Environment).refName(d.To).text(" (%s)", d.Promotion)
		}
	case events.TypePromotionFailed:
		if d, err := events.DataAs[events.PromotionFailed](e); err == nil {
			return *l.text("promotion of ").ref(d.From).text(" to %s failed: %s", d.To.Environment, oneLine(d.Error))
		}
	case events.TypeDeploymentStarted, events.TypeDeploymentSucceeded, events.TypeDeploymentFailed:
		if d, err := events.DataAs[events.Deployment](e); err == nil {
			l.text("%s %s on %s: ", d.AppID, strings.TrimPrefix(events.Type(e.Type()).Short(), "deployment."), d.Cluster).ref(d.ToImage)
			if d.Reason != "" {
				l.text(" (%s)", oneLine(d.Reason))
			}
			return *l
		}
	case events.TypeActionRequested:
		if d, err := events.DataAs[events.ActionRequested](e); err == nil {
			l.text("%s of ", d.Action)
			if img := imageOf(d.Target); img != "" {
				l.ref(img)
			} else {
				l.text("%s", targetText(d.Target))
			}
			return *l.text(" asked%s%s%s", by(d.Actor), via(d.Via), because(d.Reason))
		}
	case events.TypeEventDeadLettered:
		if d, err := events.DataAs[events.EventDeadLettered](e); err == nil {
			return *l.text("%s gave up on %s after %d deliveries: %s", d.Consumer, d.Subject, d.Deliveries, oneLine(d.Error))
		}
	}
	return *l.text("%s", e.Subject())
}

// oneLine is text on one line: an error's or a reason's line breaks and
// runs of spaces become single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

func via(v string) string {
	if v == "" {
		return ""
	}
	return " via " + v
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + oneLine(reason)
}

// imageOf is the image an action is about (a promotion's), or "" when it
// is about a workload or a dead letter.
func imageOf(t events.ActionTarget) string {
	if t.Cluster != "" || t.Sequence != 0 {
		return ""
	}
	return t.Image
}

// targetText names an action's target in words.
func targetText(t events.ActionTarget) string {
	switch {
	case t.Cluster != "":
		return t.Cluster + ":" + t.AppID
	case t.Sequence != 0:
		return "dead letter " + strconv.FormatUint(t.Sequence, 10)
	case t.Image != "":
		return t.Image
	}
	return t.Environment
}

// timelineData is the timeline page's data.
type timelineData struct {
	Filter eventFilter
	// Query is the filter's query string (the live stream's URL).
	Query string
	Rows  []eventRow
	// Last is the newest listed sequence, where the live stream resumes.
	Last uint64
	// Environments and Types fill the filters' choices.
	Environments []string
	Types        []string
}

// recentRows are the stored events the request's filters select among
// those the user may view, newest first.
func (s *server) recentRows(c echo.Context) (eventFilter, []eventRow, error) {
	f, err := s.eventFilter(c)
	if err != nil {
		return f, nil, err
	}
	limit := timelineRows
	if n, err := strconv.Atoi(c.QueryParam("limit")); err == nil && n > 0 {
		limit = min(n, maxTimelineRows)
	}
	visible := s.policy.Filter(s.user(c).Identity)
	found := s.recent.find(func(e *stored) bool { return visible(e.env) && f.matches(e) }, limit)
	rows := make([]eventRow, 0, len(found))
	for _, e := range found {
		rows = append(rows, rowOf(e))
	}
	return f, rows, nil
}

// timelinePage serves GET /timeline: the recent events, filtered, newest
// first; the script prepends the live ones.
func (s *server) timelinePage(c echo.Context) error {
	f, rows, err := s.recentRows(c)
	if err != nil {
		return err
	}
	d := timelineData{Filter: f, Query: f.query(), Rows: rows, Last: s.recent.lastSeq(),
		Environments: s.visibleEnvironments(c)}
	for _, t := range events.Types {
		d.Types = append(d.Types, t.Type.Short())
	}
	return s.render(c, http.StatusOK, "timeline", d)
}

// apiEvents serves GET /api/events: the same rows as JSON.
func (s *server) apiEvents(c echo.Context) error {
	_, rows, err := s.recentRows(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"events": rows})
}

// visibleEnvironments are the configured environments the user may view.
func (s *server) visibleEnvironments(c echo.Context) []string {
	return s.policy.Environments(s.user(c).Identity, access.View, s.configuredEnvs())
}
