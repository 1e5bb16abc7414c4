package deployer

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/promoted"
	"github.com/slipway-cd/slipway/services/deployer/digests"
	"github.com/slipway-cd/slipway/services/deployer/docker"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Service is the deployer, an app.Service.
type Service struct {
	// Hooks are for tests.
	Hooks *Hooks
	// MarathonOptions are passed to every cluster's client (tests set
	// short retry delays).
	MarathonOptions []marathon.Option
	// DockerOptions are passed to every docker cluster's target (tests
	// stop a recreate after a chosen step).
	DockerOptions []docker.Option
}

// New returns the deployer service.
func New() *Service { return &Service{} }

var _ app.Service = (*Service)(nil)

// Name is how --only selects the service.
func (*Service) Name() string { return "deployer" }

// registryOf is the registry host of an environment.
func registryOf(cfg *config.Config, env string) string {
	e, _ := cfg.Environment(env)
	return e.Registry.Host
}

// ConsumerName is the durable consumer of a cluster: each cluster keeps its
// own position in the stream, so a cluster that is down holds back nobody.
func ConsumerName(cluster string) string { return "deployer-" + cluster }

// Run deploys on every configured cluster until ctx ends.
func (s *Service) Run(ctx context.Context, d app.Deps) error {
	cfg := d.Config
	if len(cfg.Clusters) == 0 {
		d.Log.Warn("no clusters configured; the deployer has nothing to do")
		<-ctx.Done()
		return nil
	}
	st, err := openStore(ctx, d.JS, cfg.NATS.Stream.Replicas, cfg.NATS.Stream.MaxAge)
	if err != nil {
		return err
	}
	marks, err := promoted.Open(ctx, d.JS, cfg.NATS.Stream.Replicas, cfg.NATS.Stream.MaxAge)
	if err != nil {
		return err
	}
	comp, err := openCompliance(ctx, d.JS, cfg)
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(d.JS, d.Stream)
	// One resolver for every cluster: its cache serves them all.
	resolver := digests.New(cfg.Environments, digests.Options{})
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return err
	}

	// The watch and reconcile goroutines end with this ctx: cancelled on
	// the way out, so that an error below returns instead of waiting for
	// them for ever.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var consumers []*bus.Consumer
	// Targets that hold connections (a Docker client) are closed once
	// nothing uses them any more.
	var closers []io.Closer
	defer func() {
		cancel()
		for _, c := range consumers {
			c.Stop()
		}
		wg.Wait()
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	gates, err := newVerifiedGates(cfg)
	if err != nil {
		return err
	}
	siblings := siblingsOf(cfg.Clusters)
	for i, cl := range cfg.Clusters {
		tg, err := platforms[cl.Platform()].open(s, cl, target.Options{Log: d.Log.With("cluster", cl.Name), PollInterval: settingsOf(cfg.Deployer).PollInterval})
		if err != nil {
			return fmt.Errorf("clusters[%d]: %w", i, err)
		}
		if c, ok := tg.(io.Closer); ok {
			closers = append(closers, c)
		}
		if a := cl.Marathon.Auth; cl.Platform() == config.ClusterMarathon && !a.None && a.Basic == nil && a.DCOS == nil && a.Token == "" && a.TokenFile == "" {
			// Kept working for existing files, but an unauthenticated
			// Marathon should be a choice written down (auth: { none: true }).
			d.Log.Warn("no marathon.auth configured: requests go without authentication; set auth: { none: true } to say so",
				"cluster", cl.Name)
		}
		only, err := onlyOf(cl)
		if err != nil {
			return fmt.Errorf("clusters[%d]: %w", i, err)
		}
		c := &cluster{
			name: cl.Name, env: cl.Environment, platform: cl.Platform(), policy: policyOf(cl.Deploy), target: tg,
			accept: cfg.AcceptOf(cl), only: only, promoted: marks,
			index: newIndex(d.Log.With("cluster", cl.Name), registryOf(cfg, cl.Environment)), store: st, pub: pub,
			log: d.Log.With("cluster", cl.Name), settings: settingsOf(cfg.Deployer), hooks: s.Hooks,
			synced: make(chan struct{}), metrics: m, siblings: siblings[cl.Name],
		}
		c.verified = gates[cl.Name]
		c.compliance = comp.forCluster(cl)
		c.digests = resolver
		wg.Go(func() { c.watch(ctx) })
		wg.Go(func() { c.reconcileLoop(ctx) })
		cons, err := d.Consume(ctx, bus.ConsumerConfig{
			Stream:  d.Stream,
			Durable: ConsumerName(cl.Name),
			FilterSubjects: []string{
				events.FilterSubject(events.TypeImagePushed, cl.Environment),
				events.FilterSubject(events.TypeImagePromoted, cl.Environment),
			},
			// Events are independent; one that waits on a long rollout
			// must not hold back the next.
			Concurrency: 8,
			DeliverNew:  true,
			Logger:      c.log,
		}, c.handle)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		consumers = append(consumers, cons)
		// Manual actions have a consumer of their own: a rollback a
		// person asks for must not queue behind pushes.
		acts, err := d.Consume(ctx, bus.ConsumerConfig{
			Stream:         d.Stream,
			Durable:        ActionConsumerName(cl.Name),
			FilterSubjects: []string{events.FilterSubject(events.TypeActionRequested, cl.Environment)},
			Concurrency:    4,
			DeliverNew:     true,
			Logger:         c.log,
		}, c.handleAction)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		consumers = append(consumers, acts)
		c.log.Info("deploying on cluster", "environment", cl.Environment, "platform", c.platform, "endpoint", tg.Endpoint())
	}
	<-ctx.Done()
	return nil
}
