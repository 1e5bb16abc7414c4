package swarm

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/swarm"

	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Rollout ids. An update is followed by the service's version index right
// after the update call ("42"). A rollback carries the image it returns to
// as well ("rollback:43:registry/app@sha256:…"): Swarm's rollback states
// end an update Swarm undid by itself (a failure of that update) as well
// as a rollback (a success of the rollback when it brought the image
// back). Get reports the one Swarm is in the middle of in the same form.
const rollbackPrefix = "rollback:"

type rolloutRef struct {
	index    uint64
	rollback bool
	// image is the image a rollback returns to.
	image string
}

func rollbackID(index uint64, image string) string {
	return rollbackPrefix + strconv.FormatUint(index, 10) + ":" + image
}

// rolloutOf is the rollout that brings the service to the image of its
// spec: an update, or a rollback when Swarm's rollback brought that image
// back (following it as an update would take Swarm's rollback for the
// update's failure).
func rolloutOf(s swarm.Service) string {
	switch state(s) {
	case swarm.UpdateStateRollbackStarted, swarm.UpdateStateRollbackPaused, swarm.UpdateStateRollbackCompleted:
		return rollbackID(s.Version.Index, specImage(s.Spec))
	}
	return revision(s)
}

func parseRollout(id string) (rolloutRef, error) {
	var r rolloutRef
	idx := id
	if rest, ok := strings.CutPrefix(id, rollbackPrefix); ok {
		r.rollback = true
		idx, r.image, ok = strings.Cut(rest, ":")
		if !ok || r.image == "" {
			return r, fmt.Errorf("rollout %q: a rollback names its version and image", id)
		}
	}
	n, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return r, fmt.Errorf("rollout %q is not a Swarm service version", id)
	}
	r.index = n
	return r, nil
}

// Update sets the service's image and lets Swarm roll the tasks over with
// the service's own update_config (and rollback_config on failure); the
// rest of the spec goes back as read. Swarm refuses a spec sent with a
// stale version index, so a service that changed since w was read is
// target.ErrConflict. A service that already has the image (an earlier
// call got that far before a crash) is not updated again: its current
// version is the rollout to follow.
//
// A restart (o.Restart, a redeploy) on the image the service runs raises
// the spec's ForceUpdate instead: Swarm then replaces every task with the
// same spec.
func (t *Target) Update(ctx context.Context, w target.Workload, image string, o target.UpdateOptions) (target.Rollout, error) {
	if err := dockerapi.Ready(ctx, t.c); err != nil {
		return target.Rollout{}, err
	}
	s, err := t.inspect(ctx, w.ID)
	if err != nil {
		return target.Rollout{}, err
	}
	if err := labelled(s); err != nil {
		return target.Rollout{}, err
	}
	restart := o.Restart && specImage(s.Spec) == image
	if specImage(s.Spec) == image && !restart {
		return target.Rollout{ID: rolloutOf(s), Revision: revision(s)}, nil
	}
	if revision(s) != w.Revision {
		return target.Rollout{}, fmt.Errorf("service %s is at version %s, read at %s: %w", w.ID, revision(s), w.Revision, target.ErrConflict)
	}
	spec := s.Spec
	cs := *spec.TaskTemplate.ContainerSpec
	cs.Image = image
	spec.TaskTemplate.ContainerSpec = &cs
	if restart {
		spec.TaskTemplate.ForceUpdate++
	}
	// No registry auth header: the manager then keeps the pull
	// credentials of the current spec.
	resp, err := t.c.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{})
	if conflict(err) {
		return target.Rollout{}, fmt.Errorf("service %s changed since version %s: %w (%v)", w.ID, w.Revision, target.ErrConflict, err)
	}
	if err != nil {
		return target.Rollout{}, fmt.Errorf("update service %s: %w", w.ID, err)
	}
	for _, warning := range resp.Warnings {
		t.log.Warn("Swarm warns about the update", "service", w.ID, "warning", warning)
	}
	after, err := t.inspect(ctx, s.ID)
	if err != nil {
		return target.Rollout{}, err
	}
	t.log.Info("service updated", "service", w.ID, "image", image, "version", revision(after))
	return target.Rollout{ID: revision(after), Revision: revision(after)}, nil
}

// maxRollbackAttempts bounds reading the service again when Swarm's
// updater wrote it between our read and the rollback call.
const maxRollbackAttempts = 5

// RollBack has Swarm undo the update in progress. A rollback Swarm began
// by itself (failure_action rollback) is the one to follow; an update
// still running or paused is rolled back with Swarm's own rollback to the
// previous spec (the rollback=previous of a service update, what `docker
// service rollback` does), which uses the service's rollback_config. With
// no update in progress it returns target.ErrOver.
func (t *Target) RollBack(ctx context.Context, workloadID, rolloutID, fromImage string) (target.Rollout, error) {
	if err := dockerapi.Ready(ctx, t.c); err != nil {
		return target.Rollout{}, err
	}
	for attempt := 1; ; attempt++ {
		s, tasks, err := t.read(ctx, workloadID)
		if err != nil {
			return target.Rollout{}, err
		}
		if err := labelled(s); err != nil {
			return target.Rollout{}, err
		}
		switch st := state(s); {
		case st == swarm.UpdateStateRollbackStarted || st == swarm.UpdateStateRollbackCompleted || st == swarm.UpdateStateRollbackPaused:
			// Swarm is undoing it already, or did (Await tells how
			// that ended).
			return target.Rollout{ID: rollbackID(s.Version.Index, fromImage), Revision: revision(s)}, nil
		case st == swarm.UpdateStatePaused || inProgress(s, count(s, tasks)):
		default:
			return target.Rollout{}, fmt.Errorf("service %s: update %s: %w", workloadID, orNone(st), target.ErrOver)
		}
		if s.PreviousSpec == nil {
			return target.Rollout{}, fmt.Errorf("service %s has no previous spec to roll back to: %w", workloadID, target.ErrOver)
		}
		if prev := specImage(*s.PreviousSpec); prev != fromImage {
			// Swarm's rollback would bring back somebody else's image.
			return target.Rollout{}, fmt.Errorf("service %s: Swarm's previous spec runs %s, not %s: %w", workloadID, prev, fromImage, target.ErrOver)
		}
		_, err = t.c.ServiceUpdate(ctx, s.ID, s.Version, s.Spec, swarm.ServiceUpdateOptions{Rollback: "previous"})
		if conflict(err) && attempt < maxRollbackAttempts {
			continue
		}
		if err != nil {
			return target.Rollout{}, fmt.Errorf("roll back service %s: %w", workloadID, err)
		}
		after, err := t.inspect(ctx, s.ID)
		if err != nil {
			return target.Rollout{}, err
		}
		t.log.Info("Swarm rolls the service back", "service", workloadID, "image", fromImage, "version", revision(after))
		return target.Rollout{ID: rollbackID(after.Version.Index, fromImage), Revision: revision(after)}, nil
	}
}

func orNone(st swarm.UpdateState) string {
	if st == "" {
		return "none"
	}
	return string(st)
}
