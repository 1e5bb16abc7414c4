package deployer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/policy"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Manual actions. A person asks, through the API, the CLI, the console or
// Slack, for a workload to be rolled back to the image it ran before, or
// redeployed on the image it runs; the interface announces it as
// action.requested. The cluster the action names carries it out as a
// deployment like any other: one record (keyed by the action, so a
// redelivered action finds it), the app's lease, the same phases, events
// and automatic rollback, the events naming the action as their cause and
// the person as their actor. An action that cannot be carried out is
// refused: deployment.failed with refused and the reason, nothing changed.

// ActionConsumerName is the durable consumer of a cluster's manual
// actions. Like the cluster's own consumer, every replica of the deployer
// binds to it, so that one of them carries out each action.
func ActionConsumerName(cluster string) string { return "deployer-" + cluster + "-actions" }

// actionKey is the record of the deployment an action asks for.
func actionKey(cluster, actionID string) string {
	return cluster + ".action." + events.ID(actionID)
}

// actingKey marks the workload an action is being carried out on, with
// its record's key: reconcile leaves the workload alone meanwhile, even
// when the deployer carrying it out died and its lease ran out.
func actingKey(cluster, appID string) string {
	return "acting." + cluster + "." + events.ID(appID)
}

// handleAction is the cluster's consumer of action.requested. Actions of
// another kind (promote, redrive) and of other clusters are not its own
// and are acknowledged.
func (c *cluster) handleAction(ctx context.Context, e events.Event) error {
	a, err := events.DataAs[events.ActionRequested](e)
	if err != nil {
		return bus.Permanent(fmt.Errorf("event %s: %w", e.ID(), err))
	}
	if (a.Action != events.ActionRollback && a.Action != events.ActionRedeploy) || a.Target.Cluster != c.name {
		return nil
	}
	if err := c.waitSynced(ctx); err != nil {
		return err
	}
	key := actionKey(c.name, e.ID())
	rec, _, err := c.store.get(ctx, key)
	if err != nil {
		return err
	}
	var release func()
	switch {
	case rec != nil && rec.Phase == phaseDone:
		return c.doneActing(ctx, rec.AppID, key)
	case rec != nil && rec.Phase == phaseRefusing:
		// Nothing to change: only the refusal to announce.
	case rec != nil:
		// Begun before (a redelivery, a deployer back from a crash):
		// finish it once the lease is free.
		if release, err = c.lockWait(ctx, rec.AppID, 2*rec.Timeout+lockTTL); err != nil {
			if errors.Is(err, errBusy) {
				return bus.RetryAfter(err, 5*time.Second)
			}
			return err
		}
	default:
		var busy bool
		release, err = c.store.lock(ctx, c.name, a.Target.AppID)
		if busy = errors.Is(err, errBusy); err != nil && !busy {
			return err
		}
		if rec, err = c.plan(ctx, e, a, busy); err == nil {
			rec, err = c.createAction(ctx, key, rec)
		}
		if err != nil {
			if release != nil {
				release()
			}
			return err
		}
	}
	if release != nil {
		defer release()
	}
	return c.carryOut(ctx, key, rec)
}

// createAction stores the new record of an action; when another replica
// stored one first, that one is carried out.
func (c *cluster) createAction(ctx context.Context, key string, rec *record) (*record, error) {
	_, created, err := c.store.create(ctx, key, rec)
	if err != nil || created {
		return rec, err
	}
	got, _, err := c.store.get(ctx, key)
	return got, cmpErr(err, nilRecord(got, key))
}

func nilRecord(r *record, key string) error {
	if r == nil {
		return fmt.Errorf("record %s vanished", key)
	}
	return nil
}

// carryOut runs an action's record to its end, the workload marked as
// acted on meanwhile.
func (c *cluster) carryOut(ctx context.Context, key string, rec *record) error {
	rec, rev, err := c.store.get(ctx, key) // its revision, for the compare-and-set
	if err != nil || rec == nil {
		return cmpErr(err, nilRecord(rec, key))
	}
	if rec.Phase == phaseRefusing {
		return c.advance(ctx, key, rec, rev)
	}
	if rec.Phase != phaseDone {
		if _, err := c.store.state.Put(ctx, actingKey(c.name, rec.AppID), []byte(key)); err != nil {
			return err
		}
		w, err := c.target.Get(ctx, rec.AppID)
		switch {
		case errors.Is(err, target.ErrNotFound) && rec.Phase == phaseUpdating:
			// Removed before anything was changed.
			rec.Phase, rec.Reason = phaseRefusing, fmt.Sprintf("there is no workload %s on %s any more", rec.AppID, c.name)
			if err := c.advance(ctx, key, rec, rev); err != nil {
				return err
			}
		case errors.Is(err, target.ErrNotFound):
			c.log.Info("workload removed during a manual action", "app", rec.AppID, "action", rec.Action)
		case err != nil:
			return err
		default:
			if err := c.resume(ctx, key, rec, rev, w); err != nil {
				return err
			}
		}
	}
	return c.doneActing(ctx, rec.AppID, key)
}

// doneActing removes the workload's mark if it is this action's.
func (c *cluster) doneActing(ctx context.Context, appID, key string) error {
	k := actingKey(c.name, appID)
	e, err := c.store.state.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if string(e.Value()) != key {
		return nil
	}
	err = c.store.state.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyExists) { // rewritten since: another action's now
		return nil
	}
	return err
}

// acting reports whether a manual action is being carried out on the
// workload (begun and not ended, whether or not its deployer is alive).
func (c *cluster) acting(ctx context.Context, appID string) bool {
	e, err := c.store.state.Get(ctx, actingKey(c.name, appID))
	if err != nil {
		return false
	}
	rec, _, err := c.store.get(ctx, string(e.Value()))
	return err == nil && rec != nil && rec.Phase != phaseDone
}

// busyAttempts and busyRetry: an action that finds its workload busy is
// tried again busyRetry later, up to busyAttempts deliveries in all, before
// it is refused (a deployment that has just ended holds its lease a moment
// longer than its announcement).
const (
	busyAttempts = 4
	busyRetry    = time.Second
)

// plan decides what an action does to its workload as it runs now: the
// record of the deployment to carry out, or of a refusal (phaseRefusing,
// Reason set) when it cannot be. busy tells that another deployer holds
// the workload's lease.
func (c *cluster) plan(ctx context.Context, e events.Event, a events.ActionRequested, busy bool) (*record, error) {
	id := a.Target.AppID
	rec := &record{
		Cluster: c.name, Environment: c.env, AppID: id, Phase: phaseUpdating, CauseID: e.ID(),
		Platform: c.platform, Timeout: c.policy.timeout, StartedAt: time.Now().UTC(),
		Action: a.Action, Actor: a.Actor, Restart: a.Action == events.ActionRedeploy,
	}
	refuse := func(format string, args ...any) (*record, error) {
		rec.Phase, rec.Reason = phaseRefusing, fmt.Sprintf(format, args...)
		return rec, nil
	}
	w, err := c.target.Get(ctx, id)
	if errors.Is(err, target.ErrNotFound) {
		return refuse("there is no workload %s on %s", id, c.name)
	}
	if err != nil {
		return nil, err
	}
	rec.FromImage, rec.ToImage, rec.FromRevision, rec.Revision = w.Image, w.Image, w.Revision, w.Revision
	if len(w.Rollouts) > 0 {
		rec.DeploymentID = w.Rollouts[0]
	}
	if !labelled(w) {
		return refuse("%s is not managed by Slipway (it has no %s label): Slipway never changes it", id, LabelPolicy)
	}
	m := c.index.managed(w)
	if m == nil {
		return refuse("%s is not managed by %s: its %s label cannot be read, or it runs an image from outside %s's registry", id, c.name, LabelPolicy, c.env)
	}
	if owner := c.claimedBy(ctx, id); owner != "" {
		return refuse("%s is managed by %s, another cluster entry on the same endpoint", id, owner)
	}
	rec.Policy, rec.Notify, rec.Timeout = m.policy.String(), m.notify, c.timeoutOf(m)
	if busy || len(w.Rollouts) > 0 || c.unfinished(ctx, id, w.Image) || c.acting(ctx, id) {
		// A deployment that is ending (its outcome announced, its lease
		// not yet given back) is not one a person should be told to wait
		// for: ask again a few times before refusing.
		if d, ok := bus.DeliveryFrom(ctx); ok && d.Attempt < busyAttempts && d.Attempt < d.MaxDeliver-1 {
			return nil, bus.RetryAfter(fmt.Errorf("a deployment of %s is in progress or ending", id), busyRetry)
		}
		which := ""
		if len(w.Rollouts) > 0 {
			which = " (" + w.Rollouts[0] + ")"
		}
		return refuse("a deployment of %s is in progress%s: ask again once it has ended", id, which)
	}
	inv, ok, err := c.store.inv.Get(ctx, c.name, id)
	if err != nil {
		return nil, err
	}
	if a.Action == events.ActionRollback {
		to, why := c.rollbackImage(ctx, w, inv, a.Target.Image)
		if why != "" {
			return refuse("%s", why)
		}
		rec.ToImage = to
	}
	img, err := policy.ParseImage(rec.ToImage)
	if err != nil {
		return refuse("%s cannot be deployed: %v", rec.ToImage, err)
	}
	if c.only != nil {
		if in, why := c.only.Matches(img.Repository, img.Tag); !in {
			return refuse("%s may not run %s: it is outside the cluster's deploy.only (%s)", c.name, rec.ToImage, why)
		}
	}
	rec.Digest = img.Digest
	if ok {
		if rec.Digest == "" && sameImage(inv.Image, rec.ToImage) {
			rec.Digest = inv.Digest
		}
		// The newest push the workload has seen stays the newest: a late
		// older push must not follow a rollback in.
		rec.PushedAt = inv.PushedAt
	}
	return rec, nil
}

// rollbackImage is the image a rollback of w goes back to: the one it ran
// before (asked empty), or asked if it ran that one before. why says, for
// the person who asked, why there is none.
func (c *cluster) rollbackImage(ctx context.Context, w target.Workload, inv inventory.Record, asked string) (image, why string) {
	ran := c.ranBefore(ctx, w, inv)
	if asked == "" {
		if len(ran) == 0 {
			return "", fmt.Sprintf("%s has nothing to roll back to: Slipway knows of no image it ran before %s", w.ID, w.Image)
		}
		return ran[0], ""
	}
	want, err := policy.ParseImage(asked)
	if err != nil {
		return "", fmt.Sprintf("%s is not an image reference: %v", asked, err)
	}
	for _, r := range ran {
		img, err := policy.ParseImage(r)
		if err == nil && (img == want || (want.Digest == "" && img.Registry == want.Registry && img.Repository == want.Repository && img.Tag == want.Tag)) {
			return r, ""
		}
	}
	if sameImage(asked, w.Image) {
		return "", fmt.Sprintf("%s runs %s already", w.ID, w.Image)
	}
	known := "none"
	if len(ran) > 0 {
		known = strings.Join(ran, ", ")
	}
	return "", fmt.Sprintf("%s never ran %s as far as Slipway knows (before %s it ran: %s): a rollback goes back only to an image the workload ran before", w.ID, asked, w.Image, known)
}

// ranBefore lists the images w ran before the one it runs, most recent
// first: the inventory's, or, for a record written before it kept them,
// the image Slipway's deployment of the running image replaced.
func (c *cluster) ranBefore(ctx context.Context, w target.Workload, inv inventory.Record) []string {
	var ran []string
	for _, p := range inv.Previous {
		if !sameImage(p, w.Image) {
			ran = append(ran, p)
		}
	}
	if len(ran) > 0 {
		return ran
	}
	rec, _, err := c.store.get(ctx, stateKey(c.name, w.ID, w.Image))
	if err == nil && rec != nil && rec.Outcome == inventory.Succeeded && rec.FromImage != "" && !sameImage(rec.FromImage, w.Image) {
		ran = append(ran, rec.FromImage)
	}
	return ran
}

// previousAfter is a workload's Previous once a deployment took it from
// one image to another: from first, to no longer among them.
func previousAfter(previous []string, from, to string) []string {
	out := make([]string, 0, len(previous)+1)
	if from != "" && !sameImage(from, to) {
		out = append(out, from)
	}
	for _, p := range previous {
		if !sameImage(p, to) && !slices.ContainsFunc(out, func(o string) bool { return sameImage(o, p) }) {
			out = append(out, p)
		}
	}
	return out[:min(len(out), inventory.MaxPrevious)]
}

// refuseAction announces a refused action: deployment.failed with refused
// and the reason. Nothing was changed, and the inventory keeps the
// workload's last deployment.
func (c *cluster) refuseAction(ctx context.Context, rec *record) error {
	if err := c.emit(ctx, events.TypeDeploymentFailed, rec, func(d *events.Deployment) {
		d.Reason, d.Refused = rec.Reason, true
	}); err != nil {
		return err
	}
	c.log.Warn("manual action refused", "action", rec.Action, "actor", rec.Actor, "app", rec.AppID, "reason", rec.Reason)
	rec.Phase, rec.Outcome = phaseDone, "refused"
	return nil
}
