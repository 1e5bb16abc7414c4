package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
)

// cluster is the deployer's view of one Marathon cluster.
type cluster struct {
	name     string
	env      string
	policy   deployPolicy
	client   *marathon.Client
	index    *index
	tracker  *tracker
	store    *store
	pub      *bus.Publisher
	log      *slog.Logger
	settings config.Deployer
	hooks    *Hooks
	// synced is closed after the first full listing, so that no event is
	// judged against an empty index.
	synced  chan struct{}
	metrics *metrics
}

// eventTypes are the Marathon events the deployer listens to.
var eventTypes = []string{
	"event_stream_attached", "api_post_event", "app_terminated_event",
	"deployment_success", "deployment_failed",
}

// watch keeps the index and the tracker current until ctx ends: the event
// stream for changes as they happen, a full listing at start, after every
// reconnect (Marathon's stream has no resume) and every SyncInterval, and
// polling of /v2/deployments for deployments someone follows.
func (c *cluster) watch(ctx context.Context) {
	stream := c.client.Events(ctx, eventTypes...)
	sync := time.NewTicker(c.settings.SyncInterval)
	defer sync.Stop()
	poll := time.NewTicker(c.settings.PollInterval)
	defer poll.Stop()
	c.resync(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-stream:
			if !ok {
				return
			}
			c.onEvent(ctx, ev)
		case <-sync.C:
			c.resync(ctx)
		case <-poll.C:
			c.pollDeployments(ctx)
		}
	}
}

// resync rebuilds the index from a full listing and catches up on
// deployments that ended while no event could reach us.
func (c *cluster) resync(ctx context.Context) {
	apps, err := c.client.ListApps(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("listing apps failed; the index keeps its last state", "error", err)
		}
		return
	}
	c.index.replaceAll(apps)
	c.metrics.apps.WithLabelValues(c.name).Set(float64(len(c.index.all())))
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
	c.pollDeployments(ctx)
}

func (c *cluster) onEvent(ctx context.Context, ev marathon.Event) {
	switch ev.Type {
	case "event_stream_attached":
		// Events between the last connection and this one are lost.
		c.resync(ctx)
	case "api_post_event":
		var e struct {
			AppDefinition *marathon.App `json:"appDefinition"`
		}
		if json.Unmarshal(ev.Data, &e) == nil && e.AppDefinition != nil && e.AppDefinition.ID != "" {
			c.index.upsert(*e.AppDefinition)
		}
	case "app_terminated_event":
		var e struct {
			AppID string `json:"appId"`
		}
		if json.Unmarshal(ev.Data, &e) == nil && e.AppID != "" {
			c.index.remove(e.AppID)
		}
	case "deployment_success", "deployment_failed":
		d, err := ev.Deployment()
		if err != nil {
			c.log.Warn("unreadable deployment event", "type", ev.Type, "error", err)
			return
		}
		o := outcome{success: ev.Type == "deployment_success", reason: d.Reason}
		if !o.success && o.reason == "" {
			o.reason = "Marathon reported the deployment failed"
		}
		c.tracker.finish(d.ID, o)
		// A deployment changes app definitions (a rollback, a scale) without
		// an api_post_event; refresh the apps it touched.
		for _, id := range d.AffectedApps() {
			c.refreshApp(ctx, id)
		}
	}
}

func (c *cluster) refreshApp(ctx context.Context, id string) {
	a, err := c.client.GetApp(ctx, id)
	switch {
	case errors.Is(err, marathon.ErrNotFound):
		c.index.remove(id)
	case err == nil:
		c.index.upsert(a)
	}
}

// pollDeployments settles followed deployments that are no longer running:
// the fallback when the event stream is down.
func (c *cluster) pollDeployments(ctx context.Context) {
	followed := c.tracker.following()
	if len(followed) == 0 {
		return
	}
	running, err := c.client.Deployments(ctx)
	if err != nil {
		return
	}
	ids := make([]string, len(running))
	for i, d := range running {
		ids[i] = d.ID
	}
	for _, id := range followed {
		if !slices.Contains(ids, id) {
			c.tracker.finish(id, outcome{gone: true})
		}
	}
}

// waitSynced blocks until the first listing is in (or ctx ends).
func (c *cluster) waitSynced(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
