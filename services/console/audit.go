package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/access"
)

// Audit sizes.
const (
	// auditRows is how many entries one audit request returns by default,
	// maxAuditRows how many ?limit= may ask for: older ones are a page
	// further (?before=SEQ).
	auditRows, maxAuditRows = 500, 5000
	// auditBatch is how many audit events one fetch from the stream reads.
	auditBatch = 256
)

// auditTypes are the events that record a state change someone asked
// for: approval decisions and manual actions (a redrive is one).
var auditTypes = []events.Type{events.TypeApprovalGranted, events.TypeApprovalRejected, events.TypeActionRequested}

// auditEntry is one state change as the audit shows it.
type auditEntry struct {
	Seq  uint64    `json:"seq"`
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// Action is approve or reject for a decision, the action's name for a
	// manual action (rollback, redeploy, promote, redrive).
	Action      string `json:"action"`
	Environment string `json:"environment"`
	Actor       string `json:"actor"`
	Via         string `json:"via,omitempty"`
	// Target says in words what it was about: the approval, the workload,
	// the image or the dead letter.
	Target string `json:"target"`
	// Image is the image a promotion was asked for (the page shows it as
	// a reference).
	Image  string `json:"image,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// auditFilter is what an audit request selects; an empty field selects
// everything.
type auditFilter struct {
	Env, Actor, Action string
	// Since bounds the entries to those at or after it; Before (a stream
	// sequence) to those older than a previous page's last entry.
	Since  time.Time
	Before uint64
	Limit  int
}

func (s *server) auditFilter(c echo.Context) (auditFilter, error) {
	f := auditFilter{Env: strings.TrimSpace(c.QueryParam("env")), Actor: strings.TrimSpace(c.QueryParam("actor")),
		Action: strings.ToLower(strings.TrimSpace(c.QueryParam("action"))), Limit: auditRows}
	if v := strings.TrimSpace(c.QueryParam("since")); v != "" {
		t, err := parseSince(v, s.now())
		if err != nil {
			return f, echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		f.Since = t
	}
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, echo.NewHTTPError(http.StatusBadRequest, "before: a stream sequence")
		}
		f.Before = n
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return f, echo.NewHTTPError(http.StatusBadRequest, "limit: a positive number")
		}
		f.Limit = min(n, maxAuditRows)
	}
	return f, nil
}

// parseSince reads since=: a time (RFC 3339), a day (2006-01-02, UTC) or
// a duration back from now (24h).
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since: a time (2006-01-02T15:04:05Z), a day (2006-01-02) or a duration back from now (24h), not %q", v)
}

// matches applies the filters the stream's subjects do not.
func (f auditFilter) matches(e auditEntry) bool {
	return (f.Actor == "" || strings.EqualFold(e.Actor, f.Actor)) &&
		(f.Action == "" || e.Action == f.Action || e.Type == f.Action) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since))
}

// query is the filter as a query string, without the paging.
func (f auditFilter) query() url.Values {
	q := url.Values{}
	for _, kv := range [][2]string{{"env", f.Env}, {"actor", f.Actor}, {"action", f.Action}} {
		if kv[1] != "" {
			q.Set(kv[0], kv[1])
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	return q
}

// auditOf reads an audit event; ok is false for an event that is not one
// (or whose data does not decode).
func auditOf(seq uint64, ev events.Event) (auditEntry, bool) {
	e := auditEntry{Seq: seq, ID: ev.ID(), Time: ev.Time().UTC(), Type: events.Type(ev.Type()).Short(),
		Environment: events.EnvironmentOf(ev)}
	switch events.Type(ev.Type()) {
	case events.TypeApprovalGranted, events.TypeApprovalRejected:
		d, err := events.DataAs[events.ApprovalDecision](ev)
		if err != nil {
			return e, false
		}
		e.Action = "approve"
		if events.Type(ev.Type()) == events.TypeApprovalRejected {
			e.Action = "reject"
		}
		e.Actor, e.Via, e.Reason = d.By, d.Via, d.Reason
		e.Target = "approval " + d.ApprovalID
		if d.Promotion != "" {
			e.Target += " (" + d.Promotion + ")"
		}
	case events.TypeActionRequested:
		d, err := events.DataAs[events.ActionRequested](ev)
		if err != nil {
			return e, false
		}
		e.Action, e.Actor, e.Via, e.Reason, e.Target = d.Action, d.Actor, d.Via, d.Reason, targetText(d.Target)
		e.Image = imageOf(d.Target)
		if !d.RequestedAt.IsZero() {
			e.Time = d.RequestedAt.UTC()
		}
		if e.Environment == "" {
			e.Environment = d.Target.Environment
		}
	default:
		return e, false
	}
	return e, true
}

// auditSubjects are the subjects the audit reads for the environments the
// request may see: the server skips everything else, so the read costs
// the audit events, not the stream.
func (s *server) auditSubjects(id access.Identity, f auditFilter) []string {
	envs := []string{""} // every environment
	if f.Env != "" {
		envs = []string{f.Env}
	} else if all := s.configuredEnvs(); len(s.policy.Environments(id, access.View, all)) < len(all) {
		envs = s.policy.Environments(id, access.View, all)
	}
	var subjects []string
	for _, env := range envs {
		for _, t := range auditTypes {
			subjects = append(subjects, events.FilterSubject(t, env))
		}
	}
	return subjects
}

func (s *server) configuredEnvs() []string {
	names := make([]string, 0, len(s.cfg.Environments))
	for _, e := range s.cfg.Environments {
		names = append(names, e.Name)
	}
	return names
}

// readAudit returns the newest f.Limit entries the user may view that f
// selects, newest first, and whether older ones exist. It reads the stream
// itself through a consumer filtered on the audit subjects, so that it
// reaches back the stream's whole retention (the recent events hold only
// the last few thousand of everything), keeping only the newest f.Limit
// entries in memory however many it reads.
func (s *server) readAudit(ctx context.Context, id access.Identity, f auditFilter) (entries []auditEntry, older bool, err error) {
	visible := s.policy.Filter(id)
	if f.Env != "" && !visible(f.Env) {
		return nil, false, nil
	}
	subjects := s.auditSubjects(id, f)
	if len(subjects) == 0 {
		return nil, false, nil
	}
	cfg := jetstream.ConsumerConfig{FilterSubjects: subjects, AckPolicy: jetstream.AckNonePolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute, MemoryStorage: true}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.deps.JS.CreateConsumer(ctx, s.streamName(), cfg)
	if err != nil {
		return nil, false, fmt.Errorf("audit: %w", err)
	}
	defer func() {
		// The inactive threshold removes it anyway; deleting it now keeps
		// the server's consumer list short.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.deps.JS.DeleteConsumer(dctx, s.streamName(), cons.CachedInfo().Name)
	}()
	if cons.CachedInfo().NumPending == 0 {
		return nil, false, nil
	}
	// ring keeps the newest f.Limit entries read so far.
	ring := make([]auditEntry, 0, min(f.Limit, auditBatch))
	next, dropped := 0, false
	for done := false; !done; {
		batch, err := cons.FetchNoWait(auditBatch)
		if err != nil {
			return nil, false, fmt.Errorf("audit: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if md.NumPending == 0 {
				done = true
			}
			if f.Before != 0 && md.Sequence.Stream >= f.Before {
				done = true
				break
			}
			ev, err := events.FromMsg(m.Data())
			if err != nil {
				continue
			}
			e, ok := auditOf(md.Sequence.Stream, ev)
			if !ok || !visible(e.Environment) || !f.matches(e) {
				continue
			}
			if len(ring) < f.Limit {
				ring = append(ring, e)
				continue
			}
			ring[next], next, dropped = e, (next+1)%f.Limit, true
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, false, fmt.Errorf("audit: %w", err)
		}
		if n == 0 {
			done = true
		}
	}
	entries = make([]auditEntry, 0, len(ring))
	for i := len(ring) - 1; i >= 0; i-- {
		entries = append(entries, ring[(next+i)%len(ring)])
	}
	return entries, dropped, nil
}

// auditData is the audit page's data.
type auditData struct {
	Filter auditFilter
	// Since is the filter's bound as the form shows it.
	Since   string
	Entries []auditEntry
	// Older and CSV link the next page and the export.
	Older, CSV   string
	Environments []string
	Actions      []string
	Error        string
}

// auditActions are the action filter's choices.
var auditActions = []string{"approve", "reject", events.ActionRollback, events.ActionRedeploy, events.ActionPromote, events.ActionRedrive}

// auditCSVHeader names the export's columns.
var auditCSVHeader = []string{"seq", "time", "environment", "actor", "via", "action", "target", "reason", "type", "id"}

// auditPage serves GET /audit (HTML, ?format=csv) and GET /api/audit
// (JSON): who changed what, when and through which interface, newest
// first.
func (s *server) auditPage(c echo.Context) error {
	f, err := s.auditFilter(c)
	if err != nil {
		return err
	}
	format := c.QueryParam("format")
	if strings.HasPrefix(c.Path(), "/api/") {
		format = "json"
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	entries, older, err := s.readAudit(ctx, s.user(c).Identity, f)
	d := auditData{Filter: f, Entries: entries, Environments: s.visibleEnvironments(c), Actions: auditActions}
	if err != nil {
		s.log.Warn("audit unavailable", "error", err)
		if format != "" && format != "html" {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "the audit cannot be read right now; retry later")
		}
		d.Error = "The audit cannot be read right now; retry later."
		return s.render(c, http.StatusServiceUnavailable, "audit", d)
	}
	q := f.query()
	if !f.Since.IsZero() {
		d.Since = f.Since.UTC().Format(time.RFC3339)
	}
	if older && len(entries) > 0 {
		oq := f.query()
		oq.Set("before", strconv.FormatUint(entries[len(entries)-1].Seq, 10))
		if f.Limit != auditRows {
			oq.Set("limit", strconv.Itoa(f.Limit))
		}
		d.Older = "/audit?" + oq.Encode()
	}
	switch format {
	case "json":
		body := map[string]any{"entries": entries}
		if d.Older != "" {
			body["older"] = "/api" + d.Older
		}
		return c.JSON(http.StatusOK, body)
	case "csv":
		rows := make([][]string, 0, len(entries))
		for _, e := range entries {
			rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), stamp(e.Time), e.Environment, e.Actor, e.Via,
				e.Action, e.Target, e.Reason, e.Type, e.ID})
		}
		return writeCSV(c, "slipway-audit.csv", auditCSVHeader, rows)
	case "", "html":
		if f.Before != 0 {
			q.Set("before", strconv.FormatUint(f.Before, 10))
		}
		q.Set("format", "csv")
		d.CSV = "/audit?" + q.Encode()
		return s.render(c, http.StatusOK, "audit", d)
	}
	return echo.NewHTTPError(http.StatusBadRequest, "format: html, csv or json")
}
