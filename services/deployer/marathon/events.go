package marathon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// EventStreamAttached is the event Marathon sends when a stream connects.
// Events sent while the client was disconnected are lost (Marathon cannot
// resume a stream), so callers treat it as "re-read the state now".
const EventStreamAttached = "event_stream_attached"

// Event is one event from Marathon's event stream.
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// DeploymentEvent is the data of deployment_success, deployment_failed,
// deployment_info and deployment_step_success/failure.
type DeploymentEvent struct {
	// ID is the deployment id (the plan's id when the event has no own id).
	ID        string         `json:"id"`
	Plan      DeploymentPlan `json:"plan"`
	Reason    string         `json:"reason"`
	Timestamp string         `json:"timestamp"`
}

// DeploymentPlan is the plan a deployment event is about.
type DeploymentPlan struct {
	ID      string          `json:"id"`
	Version string          `json:"version"`
	Steps   json.RawMessage `json:"steps"`
}

// AffectedApps lists the apps the plan's steps act on, in order, without
// repeats.
func (p DeploymentPlan) AffectedApps() []string {
	var steps []struct {
		Actions []struct {
			App string `json:"app"`
		} `json:"actions"`
	}
	if json.Unmarshal(p.Steps, &steps) != nil {
		return nil
	}
	var apps []string
	for _, s := range steps {
		for _, a := range s.Actions {
			if a.App != "" && !slices.Contains(apps, a.App) {
				apps = append(apps, a.App)
			}
		}
	}
	return apps
}

// AffectedApps lists the apps the event's deployment acts on.
func (e DeploymentEvent) AffectedApps() []string { return e.Plan.AffectedApps() }

// Deployment decodes the data of a deployment_* event.
func (e Event) Deployment() (DeploymentEvent, error) {
	var d DeploymentEvent
	if !strings.HasPrefix(e.Type, "deployment_") {
		return d, fmt.Errorf("marathon: %s is not a deployment event", e.Type)
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return d, fmt.Errorf("marathon: decoding %s: %w", e.Type, err)
	}
	if d.ID == "" {
		d.ID = d.Plan.ID
	}
	if d.ID == "" {
		return d, fmt.Errorf("marathon: %s names no deployment", e.Type)
	}
	return d, nil
}

var errNoHeartbeat = errors.New("no data or heartbeat from Marathon in time")

// Events follows Marathon's event stream (GET /v2/events) until ctx ends,
// then closes the channel. With types, only those events are asked for
// (event_type=…) and passed on, plus EventStreamAttached.
//
// The stream is reopened after any failure, and when it stays silent longer
// than the heartbeat timeout, with a jittered back-off of at most 10s. Every
// connection begins with EventStreamAttached; Marathon also sends one when
// another client attaches, so a caller may resync more often than needed,
// never less.
func (c *Client) Events(ctx context.Context, types ...string) <-chan Event {
	ch := make(chan Event, 64)
	q := url.Values{}
	var filter map[string]bool
	if len(types) > 0 {
		// Marathon filters event_stream_attached like any other event; the
		// caller would never learn that it has to resync.
		filter = map[string]bool{}
		for _, t := range append(slices.Clone(types), EventStreamAttached) {
			if !filter[t] {
				filter[t] = true
				q.Add("event_type", t)
			}
		}
	}
	go func() {
		defer close(ch)
		failures := 0
		for {
			delivered, err := c.stream(ctx, q, filter, ch)
			if ctx.Err() != nil {
				return
			}
			if delivered {
				failures = 0
			}
			failures++
			d := backoff(c.reconnectBase, c.reconnectMax, failures)
			c.log.Warn("marathon event stream interrupted, reconnecting", "err", err, "delay", d.Round(time.Millisecond))
			if sleep(ctx, d) != nil {
				return
			}
		}
	}()
	return ch
}

// stream runs one connection of the event stream. delivered says whether it
// passed on any event, which resets the reconnect back-off.
func (c *Client) stream(parent context.Context, q url.Values, filter map[string]bool, ch chan<- Event) (delivered bool, err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// The watchdog only runs while waiting for the server (connecting, or
	// in Read), never while the caller is slow to take an event.
	watchdog := time.AfterFunc(c.heartbeatTimeout, func() { cancel(errNoHeartbeat) })
	defer watchdog.Stop()
	cause := func(err error) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}

	u := c.endpoint("/v2/events", "/v2/events", q)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	// Marathon answers 405 unless Accept is exactly this.
	req.Header["Accept"] = []string{"text/event-stream"}
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", userAgent)
	used, err := c.auth.authorize(ctx, req)
	if err != nil {
		return false, cause(err)
	}
	// A client-wide Timeout would cut the stream after that long.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return false, cause(unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusUnauthorized {
			if _, err := c.auth.reauthorize(ctx, used); err != nil {
				return false, err
			}
		}
		return false, newAPIError(c.cluster, http.MethodGet, "/v2/events", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("marathon %s: GET /v2/events: content type %q, not text/event-stream", c.cluster, ct)
	}
	c.log.Debug("marathon event stream connected", "types", q["event_type"])

	p := newSSEParser(&watchedReader{r: resp.Body, t: watchdog, d: c.heartbeatTimeout})
	for {
		ev, err := p.next()
		if errors.Is(err, errEventTooLarge) {
			c.log.Warn("marathon event stream: " + err.Error())
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // Marathon ends a stream only when it loses leadership
			}
			return delivered, cause(err)
		}
		if filter != nil && !filter[ev.Type] {
			continue
		}
		select {
		case ch <- ev:
			delivered = true
		case <-ctx.Done():
			return delivered, context.Cause(ctx)
		}
	}
}

// watchedReader arms the heartbeat watchdog around each Read.
type watchedReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (w *watchedReader) Read(b []byte) (int, error) {
	w.t.Reset(w.d)
	n, err := w.r.Read(b)
	w.t.Stop()
	return n, err
}
