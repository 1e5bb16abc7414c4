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
// environment: the promoted copy arriving by the registry's webhook. Last,
// on a cluster with deploy.requireVerified, the image must carry a
// verification summary signed with Slipway's key. Any other image is
// refused and reported. ok false means nothing is deployed.
func (c *cluster) gate(ctx context.Context, e events.Event, t offer) (ok bool, err error) {
	if c.only != nil {
		if in, why := c.only.Matches(t.image.Repository, t.image.Tag); !in {
			c.log.Debug("not deploying: outside deploy.only", "image", t.image.String(), "reason", why, "event", e.ID())
			return false, nil
		}
	}
	if c.accept == config.AcceptPromoted && events.Type(e.Type()) == events.TypeImagePushed {
		_, promoted, err := c.promoted.Get(ctx, c.env, t.image.Digest)
		if err != nil {
			return false, err
		}
		if !promoted {
			r, err := refusalOf(e)
			if err != nil {
				return false, err
			}
			r.kind = "refused"
			r.reason = fmt.Sprintf("%s deploys only images a Slipway promotion brought into %s (accept: promoted); this one was pushed there directly", c.name, c.env)
			r.warn = "direct push not deployed: the cluster deploys only promoted images"
			return false, c.refuse(ctx, e, t, r)
		}
	}
	if c.verified == nil {
		return true, nil
	}
	return c.checkVerified(ctx, e, t)
}

// refusal is why an image is refused, with what its event said of it.
type refusal struct {
	// kind tells refusals of one image for different reasons apart in
	// the once-only mark and the event's id.
	kind                           string
	reason, warn                   string
	repository, tag, actor, source string
}

// refusalOf reads who brought the image, as the event says.
func refusalOf(e events.Event) (refusal, error) {
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			return refusal{}, err
		}
		return refusal{repository: d.Repository, tag: d.Tag, actor: d.Actor, source: d.Source}, nil
	case events.TypeImagePromoted:
		d, err := events.DataAs[events.ImagePromoted](e)
		if err != nil {
			return refusal{}, err
		}
		return refusal{repository: d.To.Repository, tag: d.To.Tag, actor: d.ApprovedBy, source: "promotion " + d.Promotion}, nil
	}
	return refusal{}, fmt.Errorf("unexpected event type %s", e.Type())
}

// refuse reports an image the cluster's workloads would have taken, once
// per (cluster, digest, kind of refusal): an event, a warning naming who
// brought what, and a note on each workload's inventory record. An image
// no workload would have taken refuses nobody and is only logged.
func (c *cluster) refuse(ctx context.Context, e events.Event, t offer, r refusal) error {
	var takers []managedApp
	for _, app := range c.index.lookup(t.image.RepoKey()) {
		if app.policy.Accept(app.image, t.image).OK {
			takers = append(takers, app)
		}
	}
	if len(takers) == 0 {
		c.log.Debug("image not deployable here and no workload would take it", "image", t.image.String(), "actor", r.actor, "reason", r.reason)
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
	// A direct push keeps the mark and event id it always had.
	mark := r.kind + "." + c.name + "." + events.ID(which)
	id := events.ID("deployment.refused", c.name, which)
	if r.kind != "refused" {
		id = events.ID("deployment.refused", c.name, which, r.kind)
	}
	if _, err := c.store.state.Get(ctx, mark); err == nil {
		return nil // announced already
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	image := t.image.String()
	ev, err := events.New(ctx, events.Spec{
		ID: id, Type: events.TypeDeploymentRefused, Source: "/slipway/deployer/" + c.name,
		Environment: c.env, Subject: image, CausationID: e.ID(),
		Data: events.DeploymentRefused{
			Cluster: c.name, Environment: c.env, Image: image, Digest: t.image.Digest,
			Repository: r.repository, Tag: r.tag, Actor: r.actor, Source: r.source,
			Reason: r.reason, Workloads: workloads,
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
	c.log.Warn(r.warn, "image", image, "actor", r.actor, "source", r.source, "reason", r.reason, "workloads", workloads, "event", id)
	note := &inventory.Refusal{Image: image, Digest: t.image.Digest, Actor: r.actor, At: time.Now().UTC(), EventID: id}
	if r.kind != "refused" {
		note.Reason = r.reason
	}
	for _, app := range takers {
		if err := c.noteRefusal(ctx, app, note); err != nil {
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
