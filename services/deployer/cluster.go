package deployer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
	"github.com/slipway-cd/slipway/pkg/platform/promoted"
	"github.com/slipway-cd/slipway/services/deployer/digests"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// cluster is the deployer's view of one cluster of one platform.
type cluster struct {
	name     string
	env      string
	platform string // marathon | docker | swarm
	policy   deployPolicy
	// accept is config.AcceptAny or config.AcceptPromoted (deploy only
	// images a promotion brought into the environment).
	accept string
	// only, when set, is every image the cluster may deploy.
	only     *match.Images
	promoted *promoted.Store
	target   target.Target
	index    *index
	store    *store
	pub      *bus.Publisher
	log      *slog.Logger
	settings config.Deployer
	hooks    *Hooks
	// synced is closed after the first full listing, so that no event is
	// judged against an empty index.
	synced  chan struct{}
	metrics *metrics
	// siblings are the other cluster entries on the same endpoint (see
	// siblings.go).
	siblings []string

	// verified, when the cluster has deploy.requireVerified, checks the
	// image's verification summary before anything is deployed.
	verified *verifiedGate

	// compliance is the environment's compliance rules; nil without any.
	compliance *clusterCompliance

	// digests resolves tag-only images for the inventory; audit is what
	// the inventory's part of reconcile remembers between passes.
	digests *digests.Resolver
	audit   auditState
}

// watch keeps the index current until ctx ends: the platform's changes as
// they happen, and a full listing at start, after every reconnect of the
// platform's event stream (none has a resume) and every SyncInterval.
func (c *cluster) watch(ctx context.Context) {
	changes := make(chan target.Change, 64)
	var watching sync.WaitGroup
	defer watching.Wait() // ctx has ended: Watch returns
	watching.Go(func() { c.target.Watch(ctx, changes) })
	every := time.NewTicker(c.settings.SyncInterval)
	defer every.Stop()
	c.resync(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-changes:
			c.onChange(ctx, ch)
		case <-every.C:
			c.resync(ctx)
		}
	}
}

// resync rebuilds the index from a full listing.
func (c *cluster) resync(ctx context.Context) {
	ws, err := c.target.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("listing workloads failed; the index keeps its last state", "error", err)
		}
		return
	}
	c.index.replaceAll(ws)
	c.metrics.apps.WithLabelValues(c.name).Set(float64(len(c.index.all())))
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
}

func (c *cluster) onChange(ctx context.Context, ch target.Change) {
	switch {
	case ch.Resync:
		c.resync(ctx)
	case ch.Workload != nil:
		c.index.upsert(*ch.Workload)
	case ch.Removed != "":
		c.index.remove(ch.Removed)
	case ch.Refresh != "":
		c.refresh(ctx, ch.Refresh)
	}
}

func (c *cluster) refresh(ctx context.Context, id string) {
	w, err := c.target.Get(ctx, id)
	switch {
	case errors.Is(err, target.ErrNotFound):
		c.index.remove(id)
	case err == nil:
		c.index.upsert(w)
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
