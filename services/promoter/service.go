package promoter

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/promoted"
	"github.com/slipway-cd/slipway/services/promoter/copier"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

// ConsumerName is the promoter's durable consumer; replicas share it.
const ConsumerName = "promoter"

// Service is the promoter, an app.Service.
type Service struct {
	// CopierOptions adjust the copier (tests shorten its retries).
	CopierOptions func(*copier.Options)
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// New returns the promoter service.
func New() *Service { return &Service{} }

var _ app.Service = (*Service)(nil)

// Name is how --only selects the service.
func (*Service) Name() string { return "promoter" }

// Run promotes until ctx ends.
func (s *Service) Run(ctx context.Context, d app.Deps) error {
	cfg := d.Config
	rs, err := rules.CompileAll(cfg.Promotions)
	if err != nil {
		return err
	}
	ver, err := buildVerification(cfg)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		d.Log.Warn("no promotions configured; the promoter has nothing to do")
		<-ctx.Done()
		return nil
	}
	replicas, keep := cfg.NATS.Stream.Replicas, cfg.NATS.Stream.MaxAge
	approvals, err := approval.Open(ctx, d.JS, replicas)
	if err != nil {
		return err
	}
	state, err := openState(ctx, d.JS, replicas, keep)
	if err != nil {
		return err
	}
	marks, err := promoted.Open(ctx, d.JS, replicas, keep)
	if err != nil {
		return err
	}
	copts := copier.Options{Logger: d.Log}
	registries := map[string]config.Registry{}
	for _, e := range cfg.Environments {
		registries[e.Name] = e.Registry
		copts.Registries = append(copts.Registries, e.Registry)
	}
	if s.CopierOptions != nil {
		s.CopierOptions(&copts)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return err
	}
	p := &promoter{rules: rs, registries: registries, copier: copier.New(copts), approvals: approvals, state: state, promoted: marks,
		pub: bus.NewPublisher(d.JS, d.Stream), log: d.Log, now: now, metrics: m, verification: ver}

	var sweeping sync.WaitGroup
	defer sweeping.Wait()
	sweepCtx, stopSweeping := context.WithCancel(ctx)
	defer stopSweeping()
	sweeping.Go(func() { p.sweepApprovals(sweepCtx, cmp.Or(cfg.Approvals.Retention, config.DefaultApprovalRetention)) })

	// Pushes in every environment a rule promotes from, every granted
	// approval, and people's actions (promote ones are carried out, the
	// others acknowledged).
	filters := []string{events.FilterSubject(events.TypeApprovalGranted, ""), events.FilterSubject(events.TypeActionRequested, "")}
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.From] {
			seen[r.From] = true
			filters = append(filters, events.FilterSubject(events.TypeImagePushed, r.From))
		}
	}
	cons, err := d.Consume(ctx, bus.ConsumerConfig{
		Stream: d.Stream, Durable: ConsumerName, FilterSubjects: filters,
		// Copies of large images take minutes; the helper keeps them alive.
		Concurrency: 4,
		DeliverNew:  true,
		Logger:      d.Log,
	}, p.handle)
	if err != nil {
		return err
	}
	defer cons.Stop()
	d.Log.Info("promoting", "rules", len(rs))
	<-ctx.Done()
	return nil
}
