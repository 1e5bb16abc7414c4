package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// awaitPoll is how often Await reads the service besides the engine's
// events: Swarm's updater writes the update status without an event for
// every step, and a lost event stream must not stall a deployment.
const awaitPoll = 250 * time.Millisecond

// serviceLabel is the label Swarm gives a task's container.
const serviceLabel = "com.docker.swarm.service.name"

// Await follows the service until the rollout ends or deadline passes.
//
// An update succeeds when Swarm completed it and the tasks converged (as
// many running on the new spec as wanted). Swarm pausing it
// (failure_action pause) or rolling it back (failure_action rollback)
// fails it with Swarm's message. A rollback succeeds when Swarm completed
// it, the service runs the image it returns to and the tasks converged;
// Swarm pausing it fails it. Somebody else changing the service meanwhile
// is Gone: what it runs now tells the rest.
func (t *Target) Await(ctx context.Context, workloadID, rolloutID string, deadline time.Time) (target.Outcome, bool, error) {
	ref, err := parseRollout(rolloutID)
	if err != nil {
		return target.Outcome{}, false, err
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	wake := t.wakeups(wctx, workloadID)
	tick := time.NewTicker(t.poll)
	defer tick.Stop()
	j := judge{ref: ref}
	var lastErr error
	for {
		s, tasks, err := t.read(wctx, workloadID)
		switch {
		case errors.Is(err, target.ErrNotFound):
			return target.Outcome{Gone: true, Reason: fmt.Sprintf("service %s was removed", workloadID)}, false, nil
		case err != nil:
			// The manager may be restarting or electing a leader:
			// keep trying until the deadline.
			if wctx.Err() == nil && (lastErr == nil || lastErr.Error() != err.Error()) {
				t.log.Warn("cannot read the service; trying again", "service", workloadID, "error", err)
			}
			lastErr = err
		default:
			lastErr = nil
			if o, done := j.see(s, count(s, tasks)); done {
				return o, false, nil
			}
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return target.Outcome{}, false, err
			}
			return target.Outcome{}, true, nil
		}
	}
}

// judge decides a rollout's outcome from successive reads of its service.
type judge struct {
	ref rolloutRef
	// image is the image an update rolls out, as first seen: a later
	// different one is somebody else's update.
	image string
}

func (j *judge) see(s swarm.Service, c counts) (target.Outcome, bool) {
	if s.Version.Index < j.ref.index {
		// Not this service's rollout (the name was reused).
		return target.Outcome{Gone: true, Reason: fmt.Sprintf("service %s is at version %d, before the rollout's %d", s.Spec.Name, s.Version.Index, j.ref.index)}, true
	}
	st, img := state(s), specImage(s.Spec)
	if j.ref.rollback {
		switch st {
		case swarm.UpdateStateRollbackStarted:
			return target.Outcome{}, false
		case swarm.UpdateStateRollbackPaused:
			return target.Outcome{Reason: swarmSays("Swarm paused the rollback", s)}, true
		case swarm.UpdateStateRollbackCompleted:
			if img != j.ref.image {
				return target.Outcome{Gone: true, Reason: fmt.Sprintf("Swarm rolled back to %s, not %s", img, j.ref.image)}, true
			}
			return target.Outcome{Success: true}, c.converged()
		}
		// Any other state is an update made after the rollback began.
		return target.Outcome{Gone: true, Reason: fmt.Sprintf("service %s was updated during the rollback", s.Spec.Name)}, true
	}
	switch st {
	case swarm.UpdateStatePaused:
		return target.Outcome{Reason: swarmSays("Swarm paused the update", s)}, true
	case swarm.UpdateStateRollbackStarted, swarm.UpdateStateRollbackPaused, swarm.UpdateStateRollbackCompleted:
		return target.Outcome{Reason: swarmSays("Swarm rolled the update back", s)}, true
	}
	if j.image == "" {
		j.image = img
	} else if img != j.image {
		return target.Outcome{Gone: true, Reason: fmt.Sprintf("service %s was updated to %s meanwhile", s.Spec.Name, img)}, true
	}
	switch st {
	case swarm.UpdateStateCompleted:
		return target.Outcome{Success: true}, c.converged()
	case "":
		// No update status: Swarm's updater has not begun (right after
		// the update call), or had nothing to roll (the tasks run the
		// spec already).
		return target.Outcome{Success: true}, !inProgress(s, c) && c.converged()
	}
	return target.Outcome{}, false
}

func swarmSays(what string, s swarm.Service) string {
	if m := message(s); m != "" {
		return what + ": " + m
	}
	return what
}

// wakeups signals engine events about the service: its own (update status
// changes) and its tasks' containers (start, die, health). They only make
// Await read the service sooner; a stream that fails is not reopened, the
// ticker stands in.
func (t *Target) wakeups(ctx context.Context, name string) <-chan struct{} {
	wake := make(chan struct{}, 1)
	go func() {
		if dockerapi.Ready(ctx, t.c) != nil {
			return // the ticker stands in
		}
		msgs, errs := t.c.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
			filters.Arg("type", string(events.ServiceEventType)),
			filters.Arg("type", string(events.ContainerEventType)),
		)})
		for {
			select {
			case m := <-msgs:
				if m.Actor.Attributes["name"] == name && m.Type == events.ServiceEventType ||
					m.Actor.Attributes[serviceLabel] == name {
					select {
					case wake <- struct{}{}:
					default:
					}
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return wake
}
