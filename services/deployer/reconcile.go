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
	"github.com/slipway-cd/slipway/services/deployer/target"
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
		c.checkCompliance(ctx)
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
// baseline), and reports drift.detected once for each app Slipway manages
// that runs something else than what Slipway last put or found there
// (somebody changed it by hand: another tag, repository or registry, a
// bare digest), and once for each that left management (its
// slipway.policy label removed, or the app removed).
//
// Which apps are this cluster's: those the index manages (labelled, an
// image of the environment's registry), and those the inventory recorded
// as managed by this cluster whatever they run now. A labelled app of
// another registry that this cluster never managed is another
// environment's on the same platform, and left alone.
func (c *cluster) reconcile(ctx context.Context) error {
	apps, err := c.target.List(ctx)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(apps))
	for _, a := range apps {
		listed[inventory.Key(c.name, a.ID)] = true
		if err := c.reconcileApp(ctx, a); err != nil {
			return err
		}
	}
	if err := c.reconcileUnlisted(ctx, listed); err != nil {
		return err
	}
	// The inventory's own part: unmanaged workloads, digests, the gone.
	return c.recordInventory(ctx, apps, listed)
}

// reconcileApp compares one listed app with its inventory record.
func (c *cluster) reconcileApp(ctx context.Context, a target.Workload) error {
	m := c.index.managed(a)
	if len(a.Rollouts) > 0 || c.updating(ctx, a.ID) || (m != nil && c.unfinished(ctx, a.ID, m.written)) {
		return nil // a deployment is under way
	}
	rec, ok, err := c.store.inv.Get(ctx, c.name, a.ID)
	if err != nil {
		return err
	}
	ours := ok && managedBefore(rec)
	switch {
	case m == nil && !ours:
		return nil // not this cluster's
	case !ok || !ours: // new, or recorded while unmanaged: the baseline
		if owner := c.claimedBy(ctx, a.ID); owner != "" {
			return nil // another entry on this endpoint manages it (moved there by hand: its drift)
		}
		return c.store.inv.Put(ctx, inventory.Record{
			Cluster: c.name, Environment: c.env, AppID: a.ID, Image: m.written, Digest: m.image.Digest,
			Policy: m.policy.String(), Platform: c.platform, Revision: a.Revision, UpdatedAt: time.Now().UTC(),
		}.WithWorkload(&a))
	case !labelled(a):
		if rec.LeftManagement == leftRemoved {
			// Back without its label (a container recreated by hand):
			// its departure was reported already.
			rec = rec.WithWorkload(&a)
			rec.LeftManagement = leftUnlabelled
			return c.store.inv.Put(ctx, rec)
		}
		return c.leave(ctx, rec)
	case sameImage(rec.Image, a.Image):
		fresh := rec.WithWorkload(&a)
		fresh.Drift, fresh.LeftManagement, fresh.Platform = "", "", c.platform
		if m != nil {
			fresh.Policy = m.policy.String()
		}
		if fresh.Drift != rec.Drift || fresh.LeftManagement != rec.LeftManagement || fresh.Policy != rec.Policy || !sameCounts(rec, fresh) {
			if rec.LeftManagement != "" {
				fresh.Revision = a.Revision // back: a later departure is a new one
			}
			return c.store.inv.Put(ctx, fresh)
		}
	case rec.Drift != a.Image:
		// apps is a snapshot: a deployment may have ended since it was
		// taken (lease released, record written), leaving the record
		// newer than the snapshot. Only an app unchanged since then runs
		// what the snapshot says.
		if now, gerr := c.target.Get(ctx, a.ID); gerr != nil || now.Revision != a.Revision {
			return nil // the next pass looks again
		}
		if c.acting(ctx, a.ID) {
			return nil // a manual action is changing it (its deployer may be on the way back)
		}
		if err := c.emitDrift(ctx, rec, a.Image, ""); err != nil {
			return err
		}
		if rec.LeftManagement != "" {
			rec.Revision = a.Revision // back: a later departure is a new one
		}
		// The digest it runs now, so that `slipway where` finds it there.
		rec.Drift, rec.DriftDigest, rec.LeftManagement = a.Image, c.runningDigest(ctx, a.Image), ""
		return c.store.inv.Put(ctx, rec)
	case rec.LeftManagement != "":
		// Back under its label, still on the drift already reported.
		rec.LeftManagement, rec.Revision = "", a.Revision
		return c.store.inv.Put(ctx, rec)
	}
	return nil
}

// reconcileUnlisted looks at the apps the inventory records as managed by
// this cluster that the listing did not show: removed, or (on a platform
// that lists only labelled workloads) unlabelled.
func (c *cluster) reconcileUnlisted(ctx context.Context, listed map[string]bool) error {
	keys, err := c.store.inv.Keys(ctx, c.name)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if listed[k] {
			continue
		}
		rec, ok, err := c.store.inv.GetKey(ctx, k)
		if err != nil {
			return err
		}
		if !ok || rec.Cluster != c.name || !managedBefore(rec) || rec.LeftManagement != "" || c.updating(ctx, rec.AppID) {
			continue
		}
		if err := c.leave(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// Why an app left management (inventory.Record.LeftManagement).
const (
	leftUnlabelled = "unlabelled"
	leftRemoved    = "removed"
)

// leave reports once that an app Slipway managed has lost its
// slipway.policy label or was removed, and flags its record. The record is
// kept in both cases, Image still what Slipway expected: a container
// recreated by hand is removed and then created again, and the new one is
// judged against that record (drift when it runs something else) instead
// of being taken as a new app. The decision is made from the app as it is
// now, not from the listing that led here.
func (c *cluster) leave(ctx context.Context, rec inventory.Record) error {
	if rec.LeftManagement != "" || c.acting(ctx, rec.AppID) {
		return nil // reported already, or a manual action is under way
	}
	why, actual, revision := leftRemoved, "", rec.Revision
	now, err := c.target.Get(ctx, rec.AppID)
	switch {
	case errors.Is(err, target.ErrNotFound):
	case err != nil:
		return err
	case labelled(now):
		return nil // labelled (again) since the listing: the next pass compares it
	default:
		why, actual, revision = leftUnlabelled, now.Image, now.Revision
		rec = rec.WithWorkload(&now)
	}
	if err := c.emitDrift(ctx, rec, actual, why, revision); err != nil {
		return err
	}
	rec.LeftManagement = why
	return c.store.inv.Put(ctx, rec)
}

// managedBefore tells whether a record is of an app this cluster managed:
// Slipway writes the app's policy into every record of a managed app.
func managedBefore(rec inventory.Record) bool { return rec.Policy != "" }

func labelled(w target.Workload) bool {
	_, ok := w.Labels[LabelPolicy]
	return ok
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

// emitDrift announces drift.detected: the app runs actual instead of
// rec.Image, or (left set) it left management. Its id makes it once per
// (expected, actual), and once per departure.
func (c *cluster) emitDrift(ctx context.Context, rec inventory.Record, actual, left string, idParts ...string) error {
	d := events.DriftDetected{
		Cluster: c.name, Environment: c.env, AppID: rec.AppID, ExpectedImage: rec.Image, ActualImage: actual,
		Platform: c.platform, Reason: "the workload runs another image than Slipway put or found there",
	}
	switch left {
	case leftUnlabelled:
		d.Unmanaged, d.Reason = true, "the "+LabelPolicy+" label was removed: Slipway no longer manages the workload"
	case leftRemoved:
		d.Unmanaged, d.Reason = true, "the workload was removed"
	}
	id := []string{"drift.detected", c.name, rec.AppID, rec.Image, actual}
	if left != "" {
		id = append(append(id, left), idParts...)
	}
	e, err := events.New(ctx, events.Spec{
		ID:          events.ID(id...),
		Type:        events.TypeDriftDetected,
		Source:      "/slipway/deployer/" + c.name,
		Environment: c.env,
		Subject:     c.name + ":" + rec.AppID,
		Data:        d,
	})
	if err != nil {
		return err
	}
	_, err = c.pub.Publish(ctx, e)
	if err == nil {
		c.log.Warn("drift: "+d.Reason, "app", rec.AppID, "expected", rec.Image, "actual", actual, "unmanaged", d.Unmanaged)
	}
	return err
}
