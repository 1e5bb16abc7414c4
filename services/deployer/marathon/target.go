package marathon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Target is a Marathon cluster as a deploy target: apps are the workloads,
// Marathon's deployments the rollouts, its event stream the watch.
type Target struct {
	c       *Client
	log     *slog.Logger
	poll    time.Duration
	tracker *tracker

	// last keeps the container of each app as last read, so that an
	// update right after a Get sends it back without a second GET.
	mu   sync.Mutex
	last map[string]App
}

var _ target.Target = (*Target)(nil)

// Open is the platform's entry for the deployer: a Target of the
// cluster's marathon block.
func Open(cl config.Cluster, o target.Options, opts ...Option) (*Target, error) {
	c, err := New(cl.Name, cl.Marathon, append([]Option{WithLogger(o.Log)}, opts...)...)
	if err != nil {
		return nil, err
	}
	return NewTarget(c, o), nil
}

// NewTarget wraps a client.
func NewTarget(c *Client, o target.Options) *Target {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	poll := o.PollInterval
	if poll <= 0 {
		poll = 5 * time.Second
	}
	return &Target{c: c, log: log, poll: poll, tracker: newTracker(), last: map[string]App{}}
}

// Client is the target's Marathon client.
func (t *Target) Client() *Client { return t.c }

// Endpoint is Marathon's URL.
func (t *Target) Endpoint() string { return t.c.URL() }

// Workload is an app as the deployer sees it.
func Workload(a App) target.Workload {
	w := target.Workload{
		ID: a.ID, Image: a.Image(), Labels: a.Labels, Revision: a.Version,
		Wanted: a.Instances, Running: a.TasksRunning,
	}
	// Marathon counts a task healthy only once all its checks pass; an app
	// without checks is healthy when its tasks run. Unhealthy tasks count
	// against it either way.
	w.Healthy = a.TasksRunning
	if len(a.HealthChecks) > 0 {
		w.Healthy = a.TasksHealthy
	}
	w.Healthy = max(w.Healthy-a.TasksUnhealthy, 0)
	for _, d := range a.Deployments {
		w.Rollouts = append(w.Rollouts, d.ID)
	}
	for _, tk := range a.Tasks {
		if tk.Host != "" && !slices.Contains(w.Nodes, tk.Host) {
			w.Nodes = append(w.Nodes, tk.Host)
		}
	}
	slices.Sort(w.Nodes)
	return w
}

func (t *Target) remember(a App) {
	t.mu.Lock()
	t.last[a.ID] = a
	t.mu.Unlock()
}

// List returns the apps with a slipway.policy label.
func (t *Target) List(ctx context.Context) ([]target.Workload, error) {
	apps, err := t.c.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]target.Workload, 0, len(apps))
	for _, a := range apps {
		out = append(out, Workload(a))
	}
	return out, nil
}

// Get reads one app.
func (t *Target) Get(ctx context.Context, id string) (target.Workload, error) {
	a, err := t.c.GetApp(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return target.Workload{}, fmt.Errorf("%w: %w", target.ErrNotFound, err)
	}
	if err != nil {
		return target.Workload{}, err
	}
	t.remember(a)
	return Workload(a), nil
}

// eventTypes are the Marathon events the deployer listens to.
var eventTypes = []string{
	EventStreamAttached, "api_post_event", "app_terminated_event",
	"deployment_success", "deployment_failed",
}

// Watch follows Marathon's event stream, and polls /v2/deployments for the
// deployments someone awaits (the fallback when the stream is down).
func (t *Target) Watch(ctx context.Context, changes chan<- target.Change) {
	stream := t.c.Events(ctx, eventTypes...)
	poll := time.NewTicker(t.poll)
	defer poll.Stop()
	send := func(ch target.Change) {
		select {
		case changes <- ch:
		case <-ctx.Done():
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-stream:
			if !ok {
				return
			}
			t.onEvent(ctx, ev, send)
		case <-poll.C:
			t.pollDeployments(ctx)
		}
	}
}

func (t *Target) onEvent(ctx context.Context, ev Event, send func(target.Change)) {
	switch ev.Type {
	case EventStreamAttached:
		// Events between the last connection and this one are lost.
		send(target.Change{Resync: true})
		t.pollDeployments(ctx)
	case "api_post_event":
		var e struct {
			AppDefinition *App `json:"appDefinition"`
		}
		if json.Unmarshal(ev.Data, &e) == nil && e.AppDefinition != nil && e.AppDefinition.ID != "" {
			w := Workload(*e.AppDefinition)
			send(target.Change{Workload: &w})
		}
	case "app_terminated_event":
		var e struct {
			AppID string `json:"appId"`
		}
		if json.Unmarshal(ev.Data, &e) == nil && e.AppID != "" {
			send(target.Change{Removed: e.AppID})
		}
	case "deployment_success", "deployment_failed":
		d, err := ev.Deployment()
		if err != nil {
			t.log.Warn("unreadable deployment event", "type", ev.Type, "error", err)
			return
		}
		o := outcome{Success: ev.Type == "deployment_success", Reason: d.Reason}
		if !o.Success && o.Reason == "" {
			o.Reason = "Marathon reported the deployment failed"
		}
		t.tracker.finish(d.ID, o)
		// A deployment changes app definitions (a rollback, a scale)
		// without an api_post_event; refresh the apps it touched.
		for _, id := range d.AffectedApps() {
			send(target.Change{Refresh: id})
		}
	}
}

// pollDeployments settles awaited deployments that are no longer running.
func (t *Target) pollDeployments(ctx context.Context) {
	followed := t.tracker.following()
	if len(followed) == 0 {
		return
	}
	running, err := t.c.Deployments(ctx)
	if err != nil {
		return
	}
	ids := make([]string, len(running))
	for i, d := range running {
		ids[i] = d.ID
	}
	for _, id := range followed {
		if !slices.Contains(ids, id) {
			t.tracker.finish(id, outcome{Gone: true})
		}
	}
}

// maxLockedRetries bounds how often an update waits for somebody else's
// deployment of the app and tries again.
const maxLockedRetries = 3

// Update PUTs the app's container with the new image. When a deployment
// of somebody else holds the app, it waits for that one to end and tries
// again, or overrides it with Force. Marathon has no precondition on a
// PUT; the app's container is sent back as last read, all but the image.
func (t *Target) Update(ctx context.Context, w target.Workload, image string, o target.UpdateOptions) (target.Rollout, error) {
	t.mu.Lock()
	app, ok := t.last[w.ID]
	t.mu.Unlock()
	if !ok || app.Version != w.Revision {
		var err error
		if app, err = t.c.GetApp(ctx, w.ID); err != nil {
			return target.Rollout{}, err
		}
	}
	container, err := WithImage(app.Container, image)
	if err != nil {
		return target.Rollout{}, fmt.Errorf("app %s: %w", w.ID, err)
	}
	fields := map[string]json.RawMessage{"container": container}
	send := func() (DeploymentRef, error) { return t.c.UpdateApp(ctx, w.ID, fields, o.Force) }
	if o.Restart && app.Image() == image {
		// A PUT of the definition as it is changes nothing; a restart
		// is Marathon's deployment of the same definition.
		send = func() (DeploymentRef, error) { return t.c.RestartApp(ctx, w.ID, o.Force) }
	}
	for attempt := 0; ; attempt++ {
		ref, err := send()
		ids, locked := LockedBy(err)
		if !locked || attempt == maxLockedRetries {
			return target.Rollout{ID: ref.DeploymentID, Revision: ref.Version}, err
		}
		t.log.Info("app is locked by a deployment; waiting for it", "app", w.ID, "deployments", ids)
		for _, id := range ids {
			if _, timedOut, err := t.Await(ctx, w.ID, id, o.Deadline); err != nil || timedOut {
				return target.Rollout{}, cmpErr(err, fmt.Errorf("app %s stayed locked by deployment %s", w.ID, id))
			}
		}
	}
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// Await waits for a deployment's outcome, from the event stream or from
// polling, until deadline.
func (t *Target) Await(ctx context.Context, _, rolloutID string, deadline time.Time) (target.Outcome, bool, error) {
	ch := t.tracker.wait(rolloutID)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case o := <-ch:
		return o, false, nil
	case <-timer.C:
		t.tracker.forget(rolloutID, ch)
		return target.Outcome{}, true, nil
	case <-ctx.Done():
		t.tracker.forget(rolloutID, ch)
		return target.Outcome{}, false, ctx.Err()
	}
}

// RollBack cancels the deployment, which makes Marathon deploy the
// previous definition. A deployment that is over gives target.ErrOver.
func (t *Target) RollBack(ctx context.Context, _, rolloutID, _ string) (target.Rollout, error) {
	ref, err := t.c.CancelDeployment(ctx, rolloutID, false)
	if errors.Is(err, ErrNotFound) {
		return target.Rollout{}, fmt.Errorf("%w: %w", target.ErrOver, err)
	}
	if err != nil {
		return target.Rollout{}, err
	}
	return target.Rollout{ID: ref.DeploymentID, Revision: ref.Version}, nil
}
