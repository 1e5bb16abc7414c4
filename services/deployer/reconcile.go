package deployer

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/policy"
)

// reconcileLoop compares what runs with the inventory every
// ReconcileInterval, after a first pass once the index is in.
func (c *cluster) reconcileLoop(ctx context.Context) {
	if c.waitSynced(ctx) != nil {
		return
	}
	t := time.NewTicker(c.settings.ReconcileInterval)
	defer t.Stop()
	for {
		err := c.reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("reconcile failed", "error", err)
		}
		if c.hooks != nil && c.hooks.Reconciled != nil {
			c.hooks.Reconciled(c.name, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcile records apps Slipway has not seen yet as they run (the
// baseline), and reports drift.detected once for each app that runs
// something else than what Slipway last put or found there: somebody
// changed it by hand.
func (c *cluster) reconcile(ctx context.Context) error {
	apps, err := c.target.List(ctx)
	if err != nil {
		return err
	}
	for _, a := range apps {
		m := c.index.managed(a)
		if m == nil || len(a.Rollouts) > 0 || c.updating(ctx, a.ID) || c.unfinished(ctx, a.ID, m.written) {
			continue // not ours, or a deployment is under way
		}
		rec, ok, err := c.store.inv.Get(ctx, c.name, a.ID)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			err = c.store.inv.Put(ctx, inventory.Record{
				Cluster: c.name, Environment: c.env, AppID: a.ID, Image: m.written, Digest: m.image.Digest,
				Policy: m.policy.String(), Platform: c.platform, Revision: a.Revision, UpdatedAt: time.Now().UTC(),
			}.WithWorkload(&a))
		case sameImage(rec.Image, m.written):
			if fresh := rec.WithWorkload(&a); rec.Drift != "" || rec.Policy != m.policy.String() || !sameCounts(rec, fresh) {
				fresh.Drift, fresh.Policy, fresh.Platform = "", m.policy.String(), c.platform
				err = c.store.inv.Put(ctx, fresh)
			}
		case rec.Drift != m.written:
			// apps is a snapshot: a deployment may have ended since it was
			// taken (lease released, record written), leaving the record
			// newer than the snapshot. Only an app unchanged since then
			// runs what the snapshot says.
			if now, gerr := c.target.Get(ctx, a.ID); gerr != nil || now.Revision != a.Revision {
				break // the next pass looks again
			}
			if err = c.emitDrift(ctx, rec, m.written); err == nil {
				rec.Drift = m.written
				err = c.store.inv.Put(ctx, rec)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// updating reports whether a deployer holds the app's lease.
func (c *cluster) updating(ctx context.Context, appID string) bool {
	_, err := c.store.locks.Get(ctx, "lock."+inventory.Key(c.name, appID))
	return !errors.Is(err, jetstream.ErrKeyNotFound)
}

// sameCounts tells whether two records show the same nodes and counts:
// the inventory is rewritten only when something an auditor reads changed.
func sameCounts(a, b inventory.Record) bool {
	return slices.Equal(a.Nodes, b.Nodes) && a.Wanted == b.Wanted && a.Running == b.Running && a.Healthy == b.Healthy
}

func sameImage(a, b string) bool {
	if a == b {
		return true
	}
	ia, err1 := policy.ParseImage(a)
	ib, err2 := policy.ParseImage(b)
	return err1 == nil && err2 == nil && ia == ib
}

func (c *cluster) emitDrift(ctx context.Context, rec inventory.Record, actual string) error {
	e, err := events.New(ctx, events.Spec{
		ID:          events.ID("drift.detected", c.name, rec.AppID, rec.Image, actual),
		Type:        events.TypeDriftDetected,
		Source:      "/slipway/deployer/" + c.name,
		Environment: c.env,
		Subject:     c.name + ":" + rec.AppID,
		Data: events.DriftDetected{
			Cluster: c.name, Environment: c.env, AppID: rec.AppID, ExpectedImage: rec.Image, ActualImage: actual,
			Platform: c.platform,
		},
	})
	if err != nil {
		return err
	}
	_, err = c.pub.Publish(ctx, e)
	if err == nil {
		c.log.Warn("drift: the app runs another image than Slipway put there", "app", rec.AppID, "expected", rec.Image, "actual", actual)
	}
	return err
}
