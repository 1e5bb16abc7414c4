package promoter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/promoted"
	"github.com/slipway-cd/slipway/pkg/platform/verify"
	"github.com/slipway-cd/slipway/services/promoter/copier"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

// promoter holds what the handler needs.
type promoter struct {
	rules []*rules.Rule
	// registries are the environments' registries by name: the only
	// registries the promoter reads from or writes to.
	registries map[string]config.Registry
	copier     *copier.Copier
	approvals  *approval.Store
	state      *stateStore
	pub        *bus.Publisher
	log        *slog.Logger
	now        func() time.Time
	metrics    *metrics
	// verification is the rules' verify lists and the summary key.
	verification *verification

	// promoted records each digest being promoted into an environment,
	// for the clusters that deploy only promoted images.
	promoted *promoted.Store
}

// errSoaking is returned while an image has not been in its stage long
// enough; the event comes back when it has (a delayed redelivery survives
// restarts, a sleep would not).
var errSoaking = errors.New("image is still soaking")

// handle is the promoter's consumer.
func (p *promoter) handle(ctx context.Context, e events.Event) error {
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			return bus.Permanent(err)
		}
		return p.pushed(ctx, e, d)
	case events.TypeApprovalGranted:
		d, err := events.DataAs[events.ApprovalDecision](e)
		if err != nil {
			return bus.Permanent(err)
		}
		return p.granted(ctx, e, d)
	case events.TypeActionRequested:
		d, err := events.DataAs[events.ActionRequested](e)
		if err != nil {
			return bus.Permanent(err)
		}
		if d.Action != events.ActionPromote {
			return nil // the deployer's
		}
		return p.promoteNow(ctx, e, d)
	}
	return nil
}

// pushed applies every rule of the push's environment.
func (p *promoter) pushed(ctx context.Context, e events.Event, d events.ImagePushed) error {
	var errs []error
	for _, r := range p.rules {
		if r.From != d.Environment {
			continue
		}
		if ok, why := r.Matches(d.Repository, d.Tag); !ok {
			p.log.Debug("rule does not match", "rule", r.Name, "image", d.Ref().String(), "reason", why)
			continue
		}
		if err := p.apply(ctx, e, r, d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
		}
	}
	if len(errs) == 1 {
		return errs[0] // keeps bus.RetryAfter visible to the consumer
	}
	return errors.Join(errs...)
}

// apply promotes one pushed image by one rule: now, after its soak time,
// or by asking for approval.
func (p *promoter) apply(ctx context.Context, e events.Event, r *rules.Rule, d events.ImagePushed) error {
	from, fromErr := p.configured(d.Ref())
	repo, tag, err := r.Target(d.Repository, d.Tag)
	if err != nil {
		return p.fail(ctx, e.ID(), r, from, events.ImageRef{Environment: r.To}, err, false)
	}
	to := events.ImageRef{Environment: r.To, Registry: p.registries[r.To].Host, Repository: repo, Tag: tag, Digest: d.Digest}
	if fromErr != nil {
		return p.fail(ctx, e.ID(), r, from, to, fromErr, false)
	}
	if d.Digest == "" {
		return p.fail(ctx, e.ID(), r, from, to, errors.New("the push carried no digest and the registry could not be asked for it"), false)
	}
	if r.MinAge > 0 {
		pushed := d.PushedAt
		if pushed.IsZero() {
			pushed = e.Time()
		}
		if wait := r.MinAge - p.now().Sub(pushed); wait > 0 {
			p.log.Info("soaking before promotion", "rule", r.Name, "image", from.String(), "for", wait.Round(time.Second))
			return bus.RetryAfter(errSoaking, wait)
		}
	}
	if r.Approval.Required {
		return p.requestApproval(ctx, e, r, from, to, false)
	}
	return p.copy(ctx, e.ID(), r, from, to, nil, "")
}

// requestApproval records an approval and announces it. Both are
// idempotent: a redelivered push finds the record and re-announces it
// under the same event id, which JetStream drops.
//
// For a person's promote action (byAction) the request is announced as
// caused by the action even when a push asked for the same approval
// before: the person waits for an answer to their own request. An
// approval already granted lets the copy go ahead; one rejected or expired
// cannot be asked again while its record lasts, and the action fails.
func (p *promoter) requestApproval(ctx context.Context, e events.Event, r *rules.Rule, from, to events.ImageRef, byAction bool) error {
	// Nobody is asked to approve an image that fails the rule's
	// verification: it could never be promoted. (The copy verifies again
	// once approved: the decision may come days later, under another
	// configuration, and image.promoted names what passed then.)
	if _, err := p.verify(ctx, r, from); err != nil {
		return p.failOrRetry(ctx, e.ID(), r, from, to, err)
	}
	now := p.now().UTC()
	requestID := events.CausedID(e.ID(), events.TypeApprovalRequested, r.Name)
	rec := approval.Record{
		ID:        events.ID("approval", r.Name, from.String(), to.String()),
		Promotion: r.Name, From: from, To: to, Approvers: r.Approval.Approvers, Groups: r.Approval.Groups,
		RequestedAt: now, ExpiresAt: now.Add(r.Approval.Timeout), State: approval.Pending,
		// The decision is caused by the request.
		CauseID: requestID, Environment: r.To,
	}
	if _, err := p.approvals.Create(ctx, rec); err != nil {
		return err
	}
	stored, err := p.approvals.Get(ctx, rec.ID)
	if err != nil {
		return err
	}
	// One request per approval, whichever push created it.
	id := stored.CauseID
	if byAction {
		id = requestID
		switch state := stored.StateAt(p.now()); state {
		case approval.Granted:
			return p.copy(ctx, e.ID(), r, from, to, &stored, e.ID())
		case approval.Rejected:
			return p.fail(ctx, e.ID(), r, from, to, fmt.Errorf("approval %s of this promotion was rejected by %s (%s); it cannot be asked again until the record is removed (approvals.retention)",
				stored.ID, stored.DecidedBy, stored.Reason), false)
		case approval.Expired:
			return p.fail(ctx, e.ID(), r, from, to, fmt.Errorf("approval %s of this promotion expired at %s; it cannot be asked again until the record is removed (approvals.retention)",
				stored.ID, stored.ExpiresAt.Format(time.RFC3339)), false)
		}
	}
	ev, err := events.New(ctx, events.Spec{
		ID: id, Type: events.TypeApprovalRequested,
		Source: "/slipway/promoter", Environment: r.To, Subject: to.String(), CausationID: e.ID(),
		Data: events.ApprovalRequested{ApprovalID: stored.ID, Promotion: r.Name, From: from, To: to,
			Approvers: stored.Approvers, ExpiresAt: stored.ExpiresAt},
	})
	if err != nil {
		return err
	}
	if _, err := p.pub.Publish(ctx, ev); err != nil {
		return err
	}
	p.metrics.promotions.WithLabelValues(r.Name, "approval_requested").Inc()
	p.log.Info("approval requested", "rule", r.Name, "image", from.String(), "approval", stored.ID)
	return nil
}

// granted copies the image of an approval that was granted.
func (p *promoter) granted(ctx context.Context, e events.Event, d events.ApprovalDecision) error {
	rec, err := p.approvals.Get(ctx, d.ApprovalID)
	if errors.Is(err, approval.ErrNotFound) {
		return bus.Permanent(fmt.Errorf("approval %s does not exist", d.ApprovalID))
	}
	if err != nil {
		return err
	}
	r := p.rule(rec.Promotion)
	if r == nil {
		return p.fail(ctx, e.ID(), &rules.Rule{Name: rec.Promotion}, rec.From, rec.To,
			fmt.Errorf("promotion %q is no longer configured", rec.Promotion), false)
	}
	from, err := p.configured(rec.From)
	if err != nil {
		return p.fail(ctx, e.ID(), r, rec.From, rec.To, err, false)
	}
	return p.copy(ctx, e.ID(), r, from, rec.To, &rec, "")
}

// configured is ref as the promoter reads it: from its environment's
// configured registry, whatever host the event named. Events come from
// ingest, which stores only pushes of configured registries, but anyone
// who can publish to the stream could name another host, and the promoter
// must never fetch from a registry nobody configured. A host that is not a
// name of the environment's registry (its host or an alias) is refused.
func (p *promoter) configured(ref events.ImageRef) (events.ImageRef, error) {
	reg, ok := p.registries[ref.Environment]
	if !ok {
		return ref, fmt.Errorf("environment %q is not configured", ref.Environment)
	}
	if ref.Registry != "" && !reg.Names(ref.Registry) {
		return ref, fmt.Errorf("the image names registry %q, which is not environment %s's registry (%s or an alias): not copied", ref.Registry, ref.Environment, reg.Host)
	}
	ref.Registry = reg.Host
	return ref, nil
}

func (p *promoter) rule(name string) *rules.Rule {
	for _, r := range p.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// copy promotes from → to once: a record per (rule, image) makes a
// redelivered event a no-op. Permanent failures end in one
// promotion.failed; retryable ones are retried with back-off, and the last
// attempt's failure is announced before the event goes to the dead letters.
// approved is the approval that allowed the copy; nil when none was needed.
// actionID is the promote action that asked for the copy, empty for a push
// or an approval: a person's action copies (and announces) even an image
// promoted before, once per action.
func (p *promoter) copy(ctx context.Context, causeID string, r *rules.Rule, from, to events.ImageRef, approved *approval.Record, actionID string) error {
	key := r.Name + "." + events.ID(from.Digest, to.String())
	if actionID != "" {
		key = r.Name + "." + events.ID(from.Digest, to.String(), actionID)
	}
	if done, err := p.state.done(ctx, key); err != nil || done != nil {
		return err
	}
	// Before anything is written anywhere: an image that fails is not
	// marked promoted and the target registry is not asked anything. A
	// failure is not recorded as the promotion's outcome: the image may be
	// signed after it was pushed, and a later push or a person's promote
	// action verifies it again.
	passed, err := p.verify(ctx, r, from)
	if err != nil {
		return p.failOrRetry(ctx, causeID, r, from, to, err)
	}
	// Recorded before the first byte is copied: the target registry
	// announces the push by webhook as soon as the manifest lands, and a
	// cluster that deploys only promoted images must find the digest
	// promoted by then, or it takes the webhook for a direct push.
	mark := promoted.Record{Environment: r.To, Digest: from.Digest, Repository: to.Repository, Tag: to.Tag,
		Rule: r.Name, CauseID: causeID, At: p.now().UTC()}
	if approved != nil {
		mark.ApprovalID, mark.Approver = approved.ID, approved.DecidedBy
	}
	if _, err := p.promoted.Put(ctx, mark); err != nil {
		return err
	}
	start := time.Now()
	res, err := p.copier.Copy(ctx, copier.Request{
		From:             copier.Ref{Registry: from.Registry, Repository: from.Repository, Tag: from.Tag, Digest: from.Digest},
		To:               copier.Ref{Registry: to.Registry, Repository: to.Repository, Tag: to.Tag, Digest: to.Digest},
		CopyReferrers:    r.CopyReferrers,
		RequireReferrers: r.RequireReferrers,
	})
	if err != nil {
		if ferr := p.failOrRetry(ctx, causeID, r, from, to, err); ferr != nil {
			return ferr
		}
		return p.state.record(ctx, key, outcome{Rule: r.Name, From: from.String(), To: to.String(), Result: "failed", Error: err.Error(), DoneAt: time.Now().UTC()})
	}
	to.Digest = res.Digest
	// The summary is attached after the copy, to the digest in the target.
	// The outcome is recorded only once image.promoted is out, so an
	// attempt that ends between the copy and the summary (a crash, the
	// target down) is delivered again, finds the image there and attaches
	// the summary then; Summarize reuses one attached before.
	var summary string
	if len(passed) > 0 {
		if summary, err = p.summarize(ctx, to, passed); err != nil {
			if ferr := p.failOrRetry(ctx, causeID, r, from, to, err); ferr != nil {
				return ferr
			}
			return p.state.record(ctx, key, outcome{Rule: r.Name, From: from.String(), To: to.String(), Result: "failed", Error: err.Error(), DoneAt: time.Now().UTC()})
		}
	}
	id := events.CausedID(causeID, events.TypeImagePromoted, r.Name, to.String())
	ev, err := events.New(ctx, events.Spec{
		ID: id, Type: events.TypeImagePromoted, Source: "/slipway/promoter", Environment: r.To,
		Subject: to.String(), CausationID: causeID,
		Data: events.ImagePromoted{Promotion: r.Name, From: from, To: to, BlobsCopied: res.BlobsCopied,
			BlobsSkipped: res.BlobsSkipped, BytesCopied: res.BytesCopied, ReferrersCopied: res.ReferrersCopied,
			DurationMs: time.Since(start).Milliseconds(), ApprovalID: approvalID(approved), ApprovedBy: approver(approved),
			Verified: passed, SummaryDigest: summary},
	})
	if err != nil {
		return err
	}
	if _, err := p.pub.Publish(ctx, ev); err != nil {
		return err
	}
	p.metrics.promotions.WithLabelValues(r.Name, "promoted").Inc()
	p.metrics.bytes.WithLabelValues(r.Name).Add(float64(res.BytesCopied))
	p.metrics.duration.WithLabelValues(r.Name).Observe(time.Since(start).Seconds())
	p.log.Info("promoted", "rule", r.Name, "from", from.String(), "to", to.String(), "blobsCopied", res.BlobsCopied,
		"blobsSkipped", res.BlobsSkipped, "bytesCopied", res.BytesCopied, "referrersCopied", res.ReferrersCopied)
	return p.state.record(ctx, key, outcome{Rule: r.Name, From: from.String(), To: to.String(), Result: "promoted", EventID: id, DoneAt: time.Now().UTC()})
}

// fail announces a promotion that did not happen.
func (p *promoter) fail(ctx context.Context, causeID string, r *rules.Rule, from, to events.ImageRef, cause error, retryable bool) error {
	attempt := 1
	if dl, ok := bus.DeliveryFrom(ctx); ok {
		attempt = dl.Attempt
	}
	ev, err := events.New(ctx, events.Spec{
		ID: events.CausedID(causeID, events.TypePromotionFailed, r.Name, to.String()), Type: events.TypePromotionFailed,
		Source: "/slipway/promoter", Environment: r.To, Subject: from.String(), CausationID: causeID,
		Data: events.PromotionFailed{Promotion: r.Name, From: from, To: to, Error: cause.Error(), Attempt: attempt, Retryable: retryable,
			Policy: failedPolicy(cause)},
	})
	if err != nil {
		return err
	}
	if _, err := p.pub.Publish(ctx, ev); err != nil {
		return err
	}
	p.metrics.promotions.WithLabelValues(r.Name, "failed").Inc()
	p.log.Warn("promotion failed", "rule", r.Name, "from", from.String(), "to", to.String(), "retryable", retryable, "error", cause)
	return nil
}

// failedPolicy names the verification policy cause is about, if any.
func failedPolicy(cause error) string {
	if f, ok := errors.AsType[*verify.Failure](cause); ok {
		return f.Policy
	}
	if u, ok := errors.AsType[*uncheckedError](cause); ok {
		return u.policy
	}
	return ""
}

// approvalID and approver name the approval that allowed a promotion, for
// image.promoted; empty when none was needed.
func approvalID(a *approval.Record) string {
	if a == nil {
		return ""
	}
	return a.ID
}

func approver(a *approval.Record) string {
	if a == nil {
		return ""
	}
	return a.DecidedBy
}
