package promoter

import (
	"context"
	"errors"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/approval"
)

const (
	// maxSweepInterval is how often, at most, the approvals bucket is
	// swept: a record leaves at most this long after its retention ended.
	maxSweepInterval = 10 * time.Minute
	// minSweepInterval bounds the sweeps of a tiny retention.
	minSweepInterval = 100 * time.Millisecond
	// announceGrace is how long a decision may wait for the decider's own
	// publish (ingest publishes right after deciding) before the sweep
	// publishes it: a decider that died in between leaves it to the sweep.
	announceGrace = time.Minute
	// sweepTimeout bounds one sweep.
	sweepTimeout = 2 * time.Minute
)

// sweepInterval is a tenth of the retention, within the bounds above.
func sweepInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, minSweepInterval), maxSweepInterval)
}

// sweepApprovals bounds the approvals bucket until ctx ends: every
// sweepInterval it removes the approvals decided or expired more than
// retention ago (approval.Store.Sweep), and announces decisions whose
// event was never stored. Every replica sweeps; the store's purges are
// conditional on the revision read, so replicas sweeping at once, or a
// sweep cut short by a crash, remove nothing they should not.
func (p *promoter) sweepApprovals(ctx context.Context, retention time.Duration) {
	tick := time.NewTicker(sweepInterval(retention))
	defer tick.Stop()
	for {
		p.sweepOnce(ctx, retention)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *promoter) sweepOnce(ctx context.Context, retention time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	now := p.now()
	removed, unannounced, err := p.approvals.Sweep(ctx, now, retention)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("approvals sweep failed; the next one carries on", "error", err)
		}
		return
	}
	if removed > 0 {
		p.log.Info("approvals past their retention removed", "removed", removed, "retention", retention)
	}
	for _, r := range unannounced {
		if now.Sub(r.DecidedAt) >= announceGrace {
			p.announce(ctx, r)
		}
	}
}

// announce publishes the decision event of a decided approval whose event
// was not stored, under its deterministic id (a copy that did make it is
// dropped by JetStream within its duplicate window), and marks it
// announced.
func (p *promoter) announce(ctx context.Context, r approval.Record) {
	_, e, err := p.approvals.Announce(ctx, p.pub, r)
	if errors.Is(err, approval.ErrNoEvent) {
		p.log.Error("approval decided, but its event cannot be built", "approval", r.ID, "error", err)
		return
	}
	if err != nil { // not stored, or not marked so: the next sweep retries
		p.log.Warn("approval decision not announced; the next sweep retries", "approval", r.ID, "error", err)
		return
	}
	p.log.Info("approval decision announced by the sweep (its decider had not)", "approval", r.ID,
		"decision", string(r.State), "by", r.DecidedBy, "event", e.ID())
}
