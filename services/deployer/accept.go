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
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// checkGates checks a cluster's deploy.accept and deploy.only.
func checkGates(cl config.Cluster, path string, p *config.Problems) {
	config.CheckAccept(p, path+".deploy.accept", cl.Deploy.Accept)
	if cl.Deploy.Only == nil {
		return
	}
	_, probs := match.Compile(cl.Deploy.Only.Repositories, cl.Deploy.Only.Tags)
	for _, pr := range probs {
		p.Add(path+".deploy.only."+pr.Field, "%v", pr.Err)
	}
}

// onlyOf compiles a cluster's deploy.only; nil when it has none.
func onlyOf(cl config.Cluster) (*match.Images, error) {
	if cl.Deploy.Only == nil {
		return nil, nil
	}
	m, probs := match.Compile(cl.Deploy.Only.Repositories, cl.Deploy.Only.Tags)
	if len(probs) > 0 {
		return nil, fmt.Errorf("deploy.only.%s: %w", probs[0].Field, probs[0].Err)
	}
	return m, nil
}

// gate decides, before any workload's policy, whether the cluster takes the
// event's image at all. deploy.only comes first: an image outside it is
// never deployed here. Then, on a cluster that accepts only promoted
// images, a push is deployed only when its digest was promoted into the
// environment: the promoted copy arriving by the registry's webhook. Any
// other push is refused and reported. ok false means nothing is deployed.
func (c *cluster) gate(ctx context.Context, e events.Event, t offer) (ok bool, err error) {
	if c.only != nil {
		if in, why := c.only.Matches(t.image.Repository, t.image.Tag); !in {
			c.log.Debug("not deploying: outside deploy.only", "image", t.image.String(), "reason", why, "event", e.ID())
			return false, nil
		}
	}
	if c.accept != config.AcceptPromoted || events.Type(e.Type()) != events.TypeImagePushed {
		return true, nil
	}
	_, promoted, err := c.promoted.Get(ctx, c.env, t.image.Digest)
	if err != nil || promoted {
		return promoted, err
	}
	d, err := events.DataAs[events.ImagePushed](e)
	if err != nil {
		return false, err
	}
	return false, c.refuse(ctx, e, t, d)
}

// refuse reports a direct push the cluster's workloads would have taken,
// once per (cluster, digest): an event, a warning naming who pushed what,
// and a note on each workload's inventory record. A push no workload would
// have taken refuses nobody and is only logged.
func (c *cluster) refuse(ctx context.Context, e events.Event, t offer, d events.ImagePushed) error {
	var takers []managedApp
	for _, app := range c.index.lookup(t.image.RepoKey()) {
		if app.policy.Accept(app.image, t.image).OK {
			takers = append(takers, app)
		}
	}
	if len(takers) == 0 {
		c.log.Debug("direct push not deployable here and no workload would take it", "image", t.image.String(), "actor", d.Actor)
		return nil
	}
	slices.SortFunc(takers, func(a, b managedApp) int { return strings.Compare(a.id, b.id) })
	workloads := make([]string, len(takers))
	for i, app := range takers {
		workloads[i] = app.id
	}
	which := t.image.Digest
	if which == "" {
		which = t.image.String()
	}
	mark := "refused." + c.name + "." + events.ID(which)
	if _, err := c.store.state.Get(ctx, mark); err == nil {
		return nil // announced already
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	image := t.image.String()
	id := events.ID("deployment.refused", c.name, which)
	ev, err := events.New(ctx, events.Spec{
		ID: id, Type: events.TypeDeploymentRefused, Source: "/slipway/deployer/" + c.name,
		Environment: c.env, Subject: image, CausationID: e.ID(),
		Data: events.DeploymentRefused{
			Cluster: c.name, Environment: c.env, Image: image, Digest: t.image.Digest,
			Repository: d.Repository, Tag: d.Tag, Actor: d.Actor, Source: d.Source,
			Reason:    fmt.Sprintf("%s deploys only images a Slipway promotion brought into %s (accept: promoted); this one was pushed there directly", c.name, c.env),
			Workloads: workloads,
		},
	})
	if err != nil {
		return err
	}
	// The event's id is the mark's: announced again after a crash before
	// the mark, JetStream drops the copy.
	if _, err := c.pub.Publish(ctx, ev); err != nil {
		return err
	}
	c.log.Warn("direct push not deployed: the cluster deploys only promoted images",
		"image", image, "actor", d.Actor, "source", d.Source, "workloads", workloads, "event", id)
	refusal := &inventory.Refusal{Image: image, Digest: t.image.Digest, Actor: d.Actor, At: time.Now().UTC(), EventID: id}
	for _, app := range takers {
		if err := c.noteRefusal(ctx, app, refusal); err != nil {
			return err
		}
	}
	_, err = c.store.state.Create(ctx, mark, []byte(id))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}

// noteRefusal records the refusal on the workload's inventory record, so
// that `slipway status` shows it; a workload the inventory has not
// recorded yet gets its record now, as it runs.
func (c *cluster) noteRefusal(ctx context.Context, app managedApp, r *inventory.Refusal) error {
	return c.store.inv.Modify(ctx, c.name, app.id, func(rec *inventory.Record, ok bool) {
		if !ok {
			*rec = inventory.Record{
				Cluster: c.name, Environment: c.env, AppID: app.id, Image: app.written, Digest: app.image.Digest,
				Policy: app.policy.String(), Platform: c.platform, UpdatedAt: time.Now().UTC(),
			}
		}
		rec.Refused = r
	})
}
