package deployer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/services/deployer/policy"
)

// offer is the image an event offers to the cluster's apps.
type offer struct {
	image    policy.Image
	pushedAt time.Time
}

// targetOf reads the image of an image.pushed or image.promoted event.
func targetOf(e events.Event) (offer, error) {
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			return offer{}, err
		}
		img, err := policy.ParseImage(events.ImageReference(d.Registry, d.Repository, d.Tag, d.Digest))
		return offer{img, d.PushedAt}, err
	case events.TypeImagePromoted:
		d, err := events.DataAs[events.ImagePromoted](e)
		if err != nil {
			return offer{}, err
		}
		img, err := policy.ParseImage(d.To.String())
		return offer{img, e.Time()}, err
	}
	return offer{}, fmt.Errorf("unexpected event type %s", e.Type())
}

// handle is the cluster's consumer: it deploys the event's image to every
// app whose policy accepts it, and returns once each of those deployments
// has ended (succeeded, or failed and rolled back). An error means some app
// could not be dealt with now; the event comes back later and the apps
// already done are skipped.
func (c *cluster) handle(ctx context.Context, e events.Event) error {
	t, err := targetOf(e)
	if err != nil {
		return bus.Permanent(fmt.Errorf("event %s: %w", e.ID(), err))
	}
	if err := c.waitSynced(ctx); err != nil {
		return err
	}
	if ok, err := c.gate(ctx, e, t); !ok || err != nil {
		return err
	}
	var jobs []managedApp
	for _, app := range c.index.lookup(t.image.RepoKey()) {
		d := app.policy.Accept(app.image, t.image)
		switch {
		case d.OK:
			jobs = append(jobs, app)
		case c.unfinished(ctx, app.id, c.imageFor(app.written, t.image)):
			// The app runs the image because an earlier attempt updated it
			// and stopped before the end: finish that deployment.
			jobs = append(jobs, app)
		default:
			c.log.Debug("policy declines", "app", app.id, "image", t.image.String(), "policy", app.policy.String(), "reason", d.Reason)
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	c.log.Info("deploying", "image", t.image.String(), "apps", len(jobs), "event", e.ID())

	sem := make(chan struct{}, c.settings.Concurrency)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, app := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.deploy(ctx, e, t, app); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", app.id, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	err = errors.Join(errs...)
	if errors.Is(err, errBusy) {
		// Another deployer is on one of the apps: come back when it is done.
		return bus.RetryAfter(err, 5*time.Second)
	}
	return err
}

// unfinished reports whether a deployment of image to the app was begun
// and has not ended.
func (c *cluster) unfinished(ctx context.Context, appID, image string) bool {
	rec, _, err := c.store.get(ctx, stateKey(c.name, appID, image))
	return err == nil && rec != nil && rec.Phase != phaseDone
}
