package promoter

import (
	"context"
	"fmt"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/services/promoter/copier"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

// promoteNow carries out a person's promote action: the image through
// its rule as if it had just been pushed, without the rule's soak time
// (the person asked for now) but with its approval. What follows names
// the action as its causation, with ids derived from the action's, so a
// redelivered action copies and announces nothing twice. A request that
// can never succeed (an unknown rule, an image outside the rule's filters
// or not in the registry) ends in promotion.failed, not retryable.
func (p *promoter) promoteNow(ctx context.Context, e events.Event, d events.ActionRequested) error {
	t := d.Target
	r := p.rule(t.Promotion)
	if r == nil {
		return p.fail(ctx, e.ID(), &rules.Rule{Name: t.Promotion, To: t.Environment}, events.ImageRef{}, events.ImageRef{Environment: t.Environment},
			fmt.Errorf("promotion %q is not configured", t.Promotion), false)
	}
	src, err := actions.ParseImage(t.Image)
	if err != nil {
		return p.fail(ctx, e.ID(), r, events.ImageRef{Environment: r.From}, events.ImageRef{Environment: r.To}, err, false)
	}
	src.Environment = r.From
	from, err := p.configured(src)
	if err != nil {
		return p.fail(ctx, e.ID(), r, src, events.ImageRef{Environment: r.To}, err, false)
	}
	if ok, why := r.Matches(from.Repository, from.Tag); !ok {
		return p.fail(ctx, e.ID(), r, from, events.ImageRef{Environment: r.To},
			fmt.Errorf("rule %s does not promote %s: %s", r.Name, from.Repository+":"+from.Tag, why), false)
	}
	repo, tag, err := r.Target(from.Repository, from.Tag)
	if err != nil {
		return p.fail(ctx, e.ID(), r, from, events.ImageRef{Environment: r.To}, err, false)
	}
	to := events.ImageRef{Environment: r.To, Registry: p.registries[r.To].Host, Repository: repo, Tag: tag}
	if from.Digest == "" {
		// The digest is resolved once per delivery; a tag moved between a
		// failed attempt and its retry promotes what the tag names then.
		dig, err := p.copier.Resolve(ctx, copier.Ref{Registry: from.Registry, Repository: from.Repository, Tag: from.Tag})
		if err != nil {
			return p.failOrRetry(ctx, e.ID(), r, from, to, err)
		}
		from.Digest = dig
	}
	to.Digest = from.Digest
	p.log.Info("promote action", "rule", r.Name, "image", from.String(), "actor", d.Actor, "via", d.Via, "action", e.ID())
	if r.Approval.Required {
		return p.requestApproval(ctx, e, r, from, to, true)
	}
	return p.copy(ctx, e.ID(), r, from, to, nil, e.ID())
}

// failOrRetry deals with a failed attempt: a failure that retrying may
// mend is handed back for redelivery (err), announced first when this is
// the last attempt; one that retrying cannot mend is announced, and nil
// returned: the event is done with.
func (p *promoter) failOrRetry(ctx context.Context, causeID string, r *rules.Rule, from, to events.ImageRef, cause error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	again := retryable(cause)
	last := true
	if dl, ok := bus.DeliveryFrom(ctx); ok {
		last = dl.Last()
	}
	if again && !last {
		p.log.Warn("promotion failed; will retry", "rule", r.Name, "from", from.String(), "to", to.String(), "error", cause)
		return cause
	}
	if err := p.fail(ctx, causeID, r, from, to, cause, again); err != nil {
		return err
	}
	if again {
		return cause // to the dead letters, with the failure announced
	}
	return nil
}
