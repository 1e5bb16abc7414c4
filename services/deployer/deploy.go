package deployer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/policy"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Hooks let tests stop the deployer at chosen points.
type Hooks struct {
	// AfterPut runs right after the platform accepted an update (Marathon's
	// PUT, Swarm's service update, a recreated container), before the
	// deployer records it: a test cancels the deployer there to play a
	// crash at the worst moment.
	AfterPut func(cluster, appID string)
	// BeforePhase runs before each phase of a recorded deployment
	// ("updating", "following", "rolling-back"), once the record says it
	// is in that phase: a test cancels the deployer there to play a crash
	// while the platform deploys or rolls back.
	BeforePhase func(cluster, appID, phase string)
	// Reconciled runs after each reconcile pass of a cluster, with the
	// pass's error: a benchmark times the passes, and holds the next one
	// back until it has taken its measurements.
	Reconciled func(cluster string, err error)
}

// deploy brings one app to the event's image, once: the record of
// (cluster, app, image) carries the deployment through its phases, so a
// redelivered event, a second event for the same image, or a restarted
// deployer picks up where the last attempt stopped.
func (c *cluster) deploy(ctx context.Context, cause events.Event, t offer, app managedApp) error {
	// The longest another deployer may hold the app: its rollout and a
	// rollback, each up to the timeout, and a dead holder's lease.
	release, err := c.lockWait(ctx, app.id, 2*c.timeoutOf(&app)+lockTTL)
	if err != nil {
		return err
	}
	defer release()

	// Decide on the app as it is now: the index may be a moment old.
	now, err := c.target.Get(ctx, app.id)
	if errors.Is(err, target.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	fresh := c.index.managed(now)
	if fresh == nil {
		return nil // the label was removed meanwhile
	}
	toImage := c.imageFor(fresh.written, t.image)
	key := stateKey(c.name, app.id, toImage)
	rec, rev, err := c.store.get(ctx, key)
	if err != nil {
		return err
	}
	if rec == nil {
		if owner := c.claimedBy(ctx, app.id); owner != "" {
			c.log.Info("not deploying: the app is managed by another cluster entry on this endpoint (changed there by hand: its drift)",
				"app", app.id, "image", toImage, "managed_by", owner)
			return nil
		}
		if ok, why := c.accepts(ctx, fresh, t); !ok {
			c.log.Debug("not deploying", "app", app.id, "image", toImage, "reason", why)
			return nil
		}
		rec = &record{
			Cluster: c.name, Environment: c.env, AppID: app.id, Phase: phaseUpdating,
			CauseID: cause.ID(), FromImage: fresh.written, ToImage: toImage, Digest: t.image.Digest,
			PushedAt: t.pushedAt, Policy: fresh.policy.String(), Notify: fresh.notify, Platform: c.platform,
			Timeout: c.timeoutOf(fresh), StartedAt: time.Now().UTC(),
		}
		rec.ApprovalID, rec.Approver = approvalOf(cause)
		var created bool
		if rev, created, err = c.store.create(ctx, key, rec); err != nil {
			return err
		}
		if !created { // another deployer began it a moment ago
			if rec, rev, err = c.store.get(ctx, key); err != nil || rec == nil {
				return cmpErr(err, errBusy)
			}
		}
	}
	return c.resume(ctx, key, rec, rev, now)
}

// resume runs a recorded deployment from the phase it is in; w is the
// workload as it runs now.
func (c *cluster) resume(ctx context.Context, key string, rec *record, rev uint64, w target.Workload) error {
	if running := w.Image; rec.Phase == phaseUpdating && running != rec.FromImage && running != rec.ToImage {
		// Begun by a deployer that died before its PUT (or before
		// recording it), and another image was deployed since: putting
		// this one now would move the app back. Nothing was announced.
		rec.Phase, rec.Outcome, rec.SupersededBy = phaseDone, "superseded", running
		rec.Reason = supersededReason(running)
		c.log.Info("deployment superseded", "app", rec.AppID, "image", rec.ToImage, "running", running)
		_, err := c.store.update(ctx, key, rec, rev)
		return err
	}
	return c.advance(ctx, key, rec, rev)
}

// lockWait takes the app's lease, waiting while another deployer holds it
// (a live one finishing its rollout, or a dead one's lease running out).
// The event stays in this handler meanwhile, kept alive by the consumer:
// waiting by redelivery spent the event's deliveries and ended in the dead
// letters. Past max it gives up with errBusy.
func (c *cluster) lockWait(ctx context.Context, appID string, max time.Duration) (func(), error) {
	deadline := time.Now().Add(max)
	delay := 50 * time.Millisecond
	for {
		release, err := c.store.lock(ctx, c.name, appID)
		if !errors.Is(err, errBusy) || time.Now().After(deadline) {
			return release, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// accepts applies the app's policy to the app as it runs now, and keeps
// events that arrive late from undoing a newer deployment.
func (c *cluster) accepts(ctx context.Context, app *managedApp, t offer) (bool, string) {
	if d := app.policy.Accept(app.image, t.image); !d.OK {
		return false, d.Reason
	}
	if ordersByVersion(app.policy) {
		return true, "" // "higher than what runs" already orders them
	}
	inv, ok, err := c.store.inv.Get(ctx, c.name, app.id)
	if err == nil && ok && !inv.PushedAt.IsZero() && !t.pushedAt.IsZero() && t.pushedAt.Before(inv.PushedAt) {
		return false, fmt.Sprintf("pushed at %s, before what runs (%s, pushed at %s)", t.pushedAt.Format(time.RFC3339), inv.Image, inv.PushedAt.Format(time.RFC3339))
	}
	return true, ""
}

// ordersByVersion tells the semver policies, which only ever move up.
func ordersByVersion(p policy.Policy) bool {
	switch p.String() {
	case "all", "major", "minor", "patch":
		return true
	}
	return false
}

func (c *cluster) timeoutOf(app *managedApp) time.Duration {
	if app.timeout > 0 {
		return app.timeout
	}
	return c.policy.timeout
}

// imageFor writes the new image the way the app writes its repository
// (no "docker.io/library/" added to an app that says "nginx"), with the
// new tag, pinned to the digest when the cluster says so.
func (c *cluster) imageFor(written string, img policy.Image) string {
	ref := repositoryPart(written) + ":" + img.Tag
	if img.Tag == "" {
		ref = repositoryPart(written)
	}
	if img.Digest != "" && (c.policy.pinDigest || img.Tag == "") {
		ref += "@" + img.Digest
	}
	return ref
}

// repositoryPart strips the tag and digest from an image reference.
func repositoryPart(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// advance runs the record's phases to the end, saving each step (with a
// compare-and-set, so a stale writer cannot overwrite a later phase).
func (c *cluster) advance(ctx context.Context, key string, rec *record, rev uint64) error {
	for rec.Phase != phaseDone {
		if c.hooks != nil && c.hooks.BeforePhase != nil {
			c.hooks.BeforePhase(c.name, rec.AppID, rec.Phase)
		}
		var err error
		switch rec.Phase {
		case phaseUpdating:
			err = c.update(ctx, rec)
		case phaseFollowing:
			err = c.follow(ctx, rec)
		case phaseRollingBack:
			err = c.rollBack(ctx, rec)
		case phaseRefusing:
			err = c.refuseAction(ctx, rec)
		default:
			return fmt.Errorf("record %s has unknown phase %q", key, rec.Phase)
		}
		if err != nil {
			return err
		}
		if rev, err = c.store.update(ctx, key, rec, rev); err != nil {
			return fmt.Errorf("save deployment state: %w", err)
		}
	}
	return nil
}

// update has the platform move the app to the new image, unless an
// earlier attempt did and died before recording it, then announces
// deployment.started.
func (c *cluster) update(ctx context.Context, rec *record) error {
	w, err := c.target.Get(ctx, rec.AppID)
	if err != nil {
		return err
	}
	updated := w.Image == rec.ToImage
	if rec.Restart {
		// A redeploy keeps the image: its update shows in the revision.
		updated = w.Revision != rec.FromRevision
	}
	if updated {
		// The update happened: follow the rollout it started, if it still runs.
		rec.Revision = w.Revision
		if len(w.Rollouts) > 0 {
			rec.DeploymentID = w.Rollouts[0]
		}
	} else {
		r, err := c.target.Update(ctx, w, rec.ToImage, target.UpdateOptions{
			Force: c.policy.force, Deadline: rec.StartedAt.Add(rec.Timeout), Restart: rec.Restart,
		})
		if err != nil {
			return err
		}
		if c.hooks != nil && c.hooks.AfterPut != nil {
			c.hooks.AfterPut(c.name, rec.AppID)
		}
		rec.DeploymentID, rec.Revision = r.ID, r.Revision
	}
	if err := c.emit(ctx, events.TypeDeploymentStarted, rec, nil); err != nil {
		return err
	}
	if err := c.noteDeployment(ctx, rec, inventory.InProgress, events.TypeDeploymentStarted); err != nil {
		return err
	}
	rec.Phase = phaseFollowing
	return nil
}

// tracer makes the deployer's own spans.
var tracer = otel.Tracer("github.com/slipway-cd/slipway/services/deployer")

// follow waits for the deployment's outcome until the record's deadline.
func (c *cluster) follow(ctx context.Context, rec *record) (err error) {
	// One name for every deployment (a collector groups by name); the id
	// is an attribute.
	ctx, span := tracer.Start(ctx, "follow deployment",
		trace.WithAttributes(
			attribute.String("slipway.cluster", c.name),
			attribute.String("slipway.platform", c.platform),
			attribute.String("slipway.workload.id", rec.AppID),
			attribute.String("slipway.deployment.id", rec.DeploymentID),
		))
	defer func() {
		span.SetAttributes(attribute.String("slipway.deployment.phase", rec.Phase))
		if rec.Reason != "" {
			span.SetAttributes(attribute.String("slipway.deployment.reason", rec.Reason))
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "follow failed")
		}
		span.End()
	}()
	deadline := rec.StartedAt.Add(rec.Timeout)
	o := target.Outcome{Gone: true}
	timedOut := false
	if rec.DeploymentID != "" {
		var err error
		if o, timedOut, err = c.target.Await(ctx, rec.AppID, rec.DeploymentID, deadline); err != nil {
			return err
		}
	}
	var newer string
	if o.Gone || timedOut {
		// The end went unseen (the event stream or this deployer was
		// down), or the deadline passed: what the app runs now decides.
		var err error
		if o, newer, err = c.settle(ctx, rec, timedOut); err != nil {
			return err
		}
	}
	if o.Success {
		return c.succeed(ctx, rec)
	}
	rec.Reason = o.Reason
	if newer != "" {
		return c.supersede(ctx, rec, newer) // not ours to roll back any more
	}
	if c.policy.rollback && (rec.DeploymentID != "" || c.platform != config.ClusterMarathon) {
		rec.Phase = phaseRollingBack
		return nil
	}
	return c.fail(ctx, rec, false)
}

// settle decides the outcome of a deployment from the app as it is now, not
// from how long it took: a release that runs, with no deployment in
// progress and its instances healthy, has succeeded, however late this is
// asked (a deployer back from a crash long after the deadline). Only a
// deployment still in progress past the deadline, or one that ended
// without the image running healthy, is a failure. pastDeadline tells
// whether the deadline has passed. newer is the image that superseded
// this deployment, if one did.
func (c *cluster) settle(ctx context.Context, rec *record, pastDeadline bool) (o target.Outcome, newer string, err error) {
	w, err := c.target.Get(ctx, rec.AppID)
	if err != nil {
		return o, "", err
	}
	switch running := w.Image; {
	case running != rec.ToImage && running != rec.FromImage:
		return o, running, nil
	case running != rec.ToImage:
		return target.Outcome{Reason: "the deployment ended and the app runs " + running}, "", nil
	case len(w.Rollouts) > 0 && pastDeadline:
		return target.Outcome{Reason: fmt.Sprintf("not healthy after %s", rec.Timeout)}, "", nil
	case len(w.Rollouts) > 0:
		// Still deploying under another id (somebody forced over ours):
		// follow that one.
		rec.DeploymentID = w.Rollouts[0]
		o, timedOut, err := c.target.Await(ctx, rec.AppID, rec.DeploymentID, rec.StartedAt.Add(rec.Timeout))
		if err != nil || (!timedOut && !o.Gone) {
			return o, "", err
		}
		return c.settle(ctx, rec, timedOut)
	case w.Settled():
		return target.Outcome{Success: true}, "", nil
	}
	return target.Outcome{Reason: fmt.Sprintf("the deployment ended with %d of %d instances running, %d healthy", w.Running, w.Wanted, w.Healthy)}, "", nil
}

func (c *cluster) succeed(ctx context.Context, rec *record) error {
	ms := time.Since(rec.StartedAt).Milliseconds()
	// The inventory first: whoever sees deployment.succeeded and asks
	// `slipway status` finds the release there. Both steps are idempotent,
	// so a crash between them is repaired by the resumed deployment.
	before, _, err := c.store.inv.Get(ctx, c.name, rec.AppID)
	if err != nil {
		return err
	}
	if err := c.store.inv.Put(ctx, inventory.Record{
		Cluster: c.name, Environment: c.env, AppID: rec.AppID, Image: rec.ToImage, Digest: rec.Digest,
		Policy: rec.Policy, Platform: c.platform, Revision: rec.revision(), UpdatedAt: time.Now().UTC(),
		EventID: rec.CauseID, PushedAt: rec.PushedAt,
		LastDeployment: c.lastDeployment(rec, inventory.Succeeded, events.TypeDeploymentSucceeded),
		Previous:       previousAfter(before.Previous, rec.FromImage, rec.ToImage),
	}.WithWorkload(c.workloadNow(ctx, rec.AppID))); err != nil {
		return err
	}
	if err := c.emit(ctx, events.TypeDeploymentSucceeded, rec, func(d *events.Deployment) { d.DurationMs = ms }); err != nil {
		return err
	}
	rec.Phase, rec.Outcome = phaseDone, "succeeded"
	c.observe(rec, "succeeded")
	return nil
}

// workloadNow reads the workload for the inventory's nodes and counts;
// nil when it cannot be read now (the next reconcile fills them in).
func (c *cluster) workloadNow(ctx context.Context, id string) *target.Workload {
	w, err := c.target.Get(ctx, id)
	if err != nil {
		return nil
	}
	return &w
}

func (c *cluster) observe(rec *record, outcome string) {
	c.metrics.deployments.WithLabelValues(c.name, outcome).Inc()
	c.metrics.duration.WithLabelValues(c.name, outcome).Observe(time.Since(rec.StartedAt).Seconds())
}

// rollBack has the platform undo the rollout (Marathon cancels the
// deployment and deploys the previous definition, Swarm rolls the service
// back, a recreated container gives way to the old one) and follows that
// rollback. When the rollout is already over, it puts the previous image
// back itself.
func (c *cluster) rollBack(ctx context.Context, rec *record) error {
	if rec.RollbackID == "" {
		r, err := c.target.RollBack(ctx, rec.AppID, rec.DeploymentID, rec.FromImage)
		if errors.Is(err, target.ErrOver) {
			w, gerr := c.target.Get(ctx, rec.AppID)
			if gerr != nil {
				return gerr
			}
			// The rollout is over (it ended between the decision and the
			// rollback, or while this deployer was down): what the app
			// runs now decides, as in settle.
			switch running := w.Image; {
			case rec.Restart && w.Settled():
				// A redeploy runs its image either way: healthy now,
				// nothing to undo.
				rec.Reason = ""
				return c.succeed(ctx, rec)
			case rec.Restart:
				return c.fail(ctx, rec, false)
			case running == rec.FromImage:
				return c.fail(ctx, rec, true)
			case running != rec.ToImage:
				// Another image was deployed since: putting the old one
				// back would undo it.
				rec.Reason += "; not rolled back: superseded, the app runs " + running
				return c.supersede(ctx, rec, running)
			case w.Settled():
				// Healthy after all: nothing to undo.
				rec.Reason = ""
				return c.succeed(ctx, rec)
			}
			r, err = c.target.Update(ctx, w, rec.FromImage, target.UpdateOptions{Force: true, Deadline: time.Now().Add(rec.Timeout)})
		}
		if err != nil {
			return err
		}
		// Saved before following, so a restart follows the same rollback.
		rec.RollbackID = r.ID
		return nil
	}
	o, timedOut, err := c.target.Await(ctx, rec.AppID, rec.RollbackID, time.Now().Add(rec.Timeout))
	if err != nil {
		return err
	}
	if o.Gone {
		w, err := c.target.Get(ctx, rec.AppID)
		if err != nil {
			return err
		}
		o.Success = w.Image == rec.FromImage && len(w.Rollouts) == 0
	}
	if !o.Success {
		why := o.Reason
		if timedOut {
			why = fmt.Sprintf("not done after %s", rec.Timeout)
		}
		rec.Reason += "; the rollback did not finish: " + why
	}
	return c.fail(ctx, rec, o.Success)
}

// supersede ends a deployment that a newer image overtook. It is announced
// as deployment.failed with superseded and the newer image, and counted
// apart: the release did not fail, it was replaced.
func (c *cluster) supersede(ctx context.Context, rec *record, newer string) error {
	rec.SupersededBy = newer
	if rec.Reason == "" {
		rec.Reason = supersededReason(newer)
	}
	return c.fail(ctx, rec, false)
}

func supersededReason(newer string) string {
	return "superseded: the app runs " + newer + ", deployed since this deployment began"
}

func (c *cluster) fail(ctx context.Context, rec *record, rolledBack bool) error {
	ms := time.Since(rec.StartedAt).Milliseconds()
	if err := c.emit(ctx, events.TypeDeploymentFailed, rec, func(d *events.Deployment) {
		d.DurationMs, d.Reason, d.RolledBack = ms, rec.Reason, rolledBack
		d.Superseded, d.SupersededBy = rec.SupersededBy != "", rec.SupersededBy
	}); err != nil {
		return err
	}
	outcome := "failed"
	switch {
	case rec.SupersededBy != "":
		outcome = "superseded"
	case rolledBack:
		outcome = "rolled_back"
	}
	if err := c.noteDeployment(ctx, rec, outcome, events.TypeDeploymentFailed); err != nil {
		return err
	}
	rec.Phase, rec.Outcome, rec.RolledBack = phaseDone, outcome, rolledBack
	c.observe(rec, outcome)
	return nil
}

// emit publishes a deployment event. Its id derives from the record's
// cause, so a step repeated after a crash publishes the same event again,
// which JetStream drops.
func (c *cluster) emit(ctx context.Context, t events.Type, rec *record, fill func(*events.Deployment)) error {
	d := rec.deployment()
	if fill != nil {
		fill(&d)
	}
	e, err := events.New(ctx, events.Spec{
		ID:          c.eventID(rec, t),
		Type:        t,
		Source:      "/slipway/deployer/" + c.name,
		Environment: c.env,
		Subject:     c.name + ":" + rec.AppID,
		CausationID: rec.CauseID,
		Data:        d,
	})
	if err != nil {
		return err
	}
	if _, err := c.pub.Publish(ctx, e); err != nil {
		return err
	}
	c.log.Info(t.Short(), "app", rec.AppID, "image", rec.ToImage, "platform", c.platform, "deployment", rec.DeploymentID, "reason", d.Reason)
	return nil
}
