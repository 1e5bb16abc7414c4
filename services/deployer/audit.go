package deployer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/policy"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// What the inventory holds besides the managed workloads' drift: every
// other workload of the cluster (unmanaged, flagged so), the digest of
// images written with a tag alone, the last deployment of each workload,
// and nothing of workloads that no longer exist.

// goneAfter is how many reconcile passes the record of a managed workload
// that was removed is kept once its departure was reported: a container
// recreated by hand is removed and created again, and must find its
// record (drift is judged against it); a workload gone for good must not
// stay in the inventory for ever.
const goneAfter = 10

// auditState is what the cluster's reconcile remembers between passes, so
// that an unchanged workload costs no inventory read or write.
type auditState struct {
	// written is, per unmanaged workload, what its record says.
	written map[string]string
	// settled is, per managed workload, the image whose digest is known.
	settled map[string]string
	// missing counts the passes a removed managed workload's record has
	// been unlisted.
	missing map[string]int
}

// recordInventory records the workloads the listing shows that Slipway
// does not manage, fills in the digest of managed ones that run a tag
// alone, and removes the records of workloads that no longer exist. It
// runs after the managed workloads' own reconcile in the same pass.
// listed holds the inventory keys of apps.
func (c *cluster) recordInventory(ctx context.Context, apps []target.Workload, listed map[string]bool) error {
	if c.audit.written == nil {
		c.audit = auditState{written: map[string]string{}, settled: map[string]string{}, missing: map[string]int{}}
	}
	for _, a := range apps {
		var err error
		if labelled(a) {
			err = c.settleDigest(ctx, a)
		} else {
			err = c.recordUnmanaged(ctx, a)
		}
		if err != nil {
			return err
		}
	}
	return c.forgetGone(ctx, listed)
}

// recordUnmanaged writes the record of a workload without the
// slipway.policy label, unless its record is of a workload Slipway managed
// (its departure is drift's to report, and the record keeps what Slipway
// expected there).
func (c *cluster) recordUnmanaged(ctx context.Context, a target.Workload) error {
	seen := fingerprint(a)
	if c.audit.written[a.ID] == seen {
		return nil
	}
	rec, ok, err := c.store.inv.Get(ctx, c.name, a.ID)
	if err != nil {
		return err
	}
	if ok && managedBefore(rec) {
		return nil
	}
	fresh := inventory.Record{
		Cluster: c.name, Environment: c.env, AppID: a.ID, Image: a.Image, Platform: c.platform,
		Revision: a.Revision, UpdatedAt: time.Now().UTC(),
	}.WithWorkload(&a)
	if ok && rec.Image == a.Image {
		fresh.UpdatedAt, fresh.Digest, fresh.DigestReason = rec.UpdatedAt, rec.Digest, rec.DigestReason
	}
	if fresh.Digest == "" {
		c.resolve(ctx, &fresh)
	}
	if !ok || !sameUnmanaged(rec, fresh) {
		if err := c.store.inv.Put(ctx, fresh); err != nil {
			return err
		}
	}
	if fresh.Digest != "" || fresh.DigestReason == "" || c.digests == nil || !c.digests.Asks(a.Image) {
		c.audit.written[a.ID] = seen // else: ask the registry again next pass
	}
	return nil
}

// settleDigest fills in the digest of a managed workload's record whose
// image names a tag alone.
func (c *cluster) settleDigest(ctx context.Context, a target.Workload) error {
	if c.audit.settled[a.ID] == a.Image || len(a.Rollouts) > 0 || c.updating(ctx, a.ID) {
		return nil
	}
	rec, ok, err := c.store.inv.Get(ctx, c.name, a.ID)
	if err != nil || !ok || !managedBefore(rec) {
		return err // no record yet: the next pass looks again
	}
	if rec.Drift != "" && rec.Drift == a.Image {
		return c.settleDriftDigest(ctx, a, rec)
	}
	if !sameImage(rec.Image, a.Image) {
		return nil // drift not reported yet: the next pass looks again
	}
	if rec.Digest == "" {
		c.resolve(ctx, &rec)
		if rec.Digest == "" && rec.DigestReason == "" {
			return nil
		}
		if err := c.store.inv.Put(ctx, rec); err != nil {
			return err
		}
	}
	if rec.Digest != "" || c.digests == nil || !c.digests.Asks(a.Image) {
		c.audit.settled[a.ID] = a.Image
	}
	return nil
}

// settleDriftDigest fills in the digest a drifted workload runs when its
// registry did not answer as the drift was recorded.
func (c *cluster) settleDriftDigest(ctx context.Context, a target.Workload, rec inventory.Record) error {
	if rec.DriftDigest == "" {
		if rec.DriftDigest = c.runningDigest(ctx, a.Image); rec.DriftDigest != "" {
			if err := c.store.inv.Put(ctx, rec); err != nil {
				return err
			}
		}
	}
	if rec.DriftDigest != "" || c.digests == nil || !c.digests.Asks(a.Image) {
		c.audit.settled[a.ID] = a.Image
	}
	return nil
}

// runningDigest is the digest image runs: the one it pins, or the one a
// configured registry answers for its tag; "" when unknown.
func (c *cluster) runningDigest(ctx context.Context, image string) string {
	if c.digests == nil {
		if img, err := policy.ParseImage(image); err == nil {
			return img.Digest
		}
		return ""
	}
	return c.digests.Resolve(ctx, image).Digest
}

func (c *cluster) resolve(ctx context.Context, rec *inventory.Record) {
	if c.digests == nil {
		return
	}
	res := c.digests.Resolve(ctx, rec.Image)
	rec.Digest, rec.DigestReason = res.Digest, res.Reason
}

// forgetGone removes the records of workloads the listing no longer shows:
// at once for an unmanaged one, after goneAfter passes for one Slipway
// managed whose removal was reported. A record is only removed once the
// platform confirms the workload does not exist.
func (c *cluster) forgetGone(ctx context.Context, listed map[string]bool) error {
	keys, err := c.store.inv.Keys(ctx, c.name)
	if err != nil {
		return err
	}
	for id := range c.audit.missing {
		if listed[inventory.Key(c.name, id)] {
			delete(c.audit.missing, id)
		}
	}
	for _, k := range keys {
		if listed[k] {
			continue
		}
		rec, ok, err := c.store.inv.GetKey(ctx, k)
		if err != nil {
			return err
		}
		if !ok || rec.Cluster != c.name || c.updating(ctx, rec.AppID) {
			continue
		}
		if managedBefore(rec) {
			if rec.LeftManagement != leftRemoved {
				continue // drift reports it first
			}
			if c.audit.missing[rec.AppID]++; c.audit.missing[rec.AppID] < goneAfter {
				continue
			}
		}
		if _, err := c.target.Get(ctx, rec.AppID); !errors.Is(err, target.ErrNotFound) {
			continue // it exists (created since the listing), or cannot be read now
		}
		if err := c.store.inv.Delete(ctx, c.name, rec.AppID); err != nil {
			return err
		}
		delete(c.audit.missing, rec.AppID)
		delete(c.audit.written, rec.AppID)
		delete(c.audit.settled, rec.AppID)
		c.log.Debug("workload gone: its inventory record is removed", "app", rec.AppID, "managed", managedBefore(rec))
	}
	return nil
}

// fingerprint is what an unmanaged workload's record shows of it.
func fingerprint(a target.Workload) string {
	return fmt.Sprint(a.Image, "|", a.Revision, "|", a.Wanted, a.Running, a.Healthy, a.Nodes)
}

func sameUnmanaged(a, b inventory.Record) bool {
	return a.Policy == "" && a.Image == b.Image && a.Revision == b.Revision && a.Digest == b.Digest &&
		a.DigestReason == b.DigestReason && a.Platform == b.Platform && a.Environment == b.Environment && sameCounts(a, b)
}

// approvalOf names the approval of the promotion an event announces, when
// it needed one.
func approvalOf(e events.Event) (id, approver string) {
	if events.Type(e.Type()) != events.TypeImagePromoted {
		return "", ""
	}
	d, err := events.DataAs[events.ImagePromoted](e)
	if err != nil {
		return "", ""
	}
	return d.ApprovalID, d.ApprovedBy
}

// eventID is the id of a deployment's event of type t: derived from the
// record's cause, so a step repeated after a crash publishes the same
// event again, which JetStream drops.
func (c *cluster) eventID(rec *record, t events.Type) string {
	return events.CausedID(rec.CauseID, t, c.name, rec.AppID, rec.ToImage)
}

// lastDeployment is the inventory's account of the deployment rec, with
// outcome announced by an event of type t.
func (c *cluster) lastDeployment(rec *record, outcome string, t events.Type) *inventory.Deployment {
	return &inventory.Deployment{
		FromImage: rec.FromImage, ToImage: rec.ToImage, Outcome: outcome, At: time.Now().UTC(), EventID: c.eventID(rec, t),
		CauseID: rec.CauseID, ApprovalID: rec.ApprovalID, Approver: rec.Approver, Action: rec.Action, Actor: rec.Actor,
	}
}

// noteDeployment writes the deployment's state into the workload's
// inventory record (creating the record, as the workload runs, when the
// deployment comes before any reconcile recorded it).
func (c *cluster) noteDeployment(ctx context.Context, rec *record, outcome string, t events.Type) error {
	var now *target.Workload
	if _, ok, err := c.store.inv.Get(ctx, c.name, rec.AppID); err != nil {
		return err
	} else if !ok {
		now = c.workloadNow(ctx, rec.AppID) // read before the retry loop: a platform call
	}
	return c.store.inv.Modify(ctx, c.name, rec.AppID, func(inv *inventory.Record, ok bool) {
		if !ok {
			*inv = inventory.Record{
				Cluster: c.name, Environment: c.env, AppID: rec.AppID, Image: rec.FromImage, Policy: rec.Policy,
				Platform: c.platform, UpdatedAt: time.Now().UTC(),
			}.WithWorkload(now)
		}
		inv.LastDeployment = c.lastDeployment(rec, outcome, t)
	})
}
