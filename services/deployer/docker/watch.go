package docker

import (
	"context"
	"strings"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"

	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// watchedActions are the container events that change what a workload
// is or how it runs.
var watchedActions = []string{"create", "destroy", "rename", "start", "die", "health_status"}

// Watch follows the engine's container events and asks for a refresh of
// the workload each concerns (a temporary container's events concern its
// workload). After every (re)connect it sends Resync.
func (t *Target) Watch(ctx context.Context, changes chan<- target.Change) {
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", LabelPolicy),
	)
	for _, a := range watchedActions {
		args.Add("event", a)
	}
	send := func(c target.Change) bool {
		select {
		case changes <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	dockerapi.FollowEvents(ctx, t.c, t.log, args,
		func(info system.Info) bool {
			t.mu.Lock()
			t.node = info.Name
			t.mu.Unlock()
			return send(target.Change{Resync: true})
		},
		func(m events.Message) bool {
			for _, n := range affected(m) {
				if !send(target.Change{Refresh: n}) {
					return false
				}
			}
			return true
		})
}

// affected are the workloads an event concerns: a rename concerns the
// workloads of both names.
func affected(m events.Message) []string {
	if m.Type != events.ContainerEventType {
		return nil
	}
	action := string(m.Action)
	if i := strings.IndexByte(action, ':'); i >= 0 {
		action = action[:i] // "health_status: healthy"
	}
	watched := false
	for _, a := range watchedActions {
		watched = watched || a == action
	}
	if !watched {
		return nil
	}
	var out []string
	for _, n := range []string{m.Actor.Attributes["name"], m.Actor.Attributes["oldName"]} {
		if n = workloadName(n); n != "" && (len(out) == 0 || out[0] != n) {
			out = append(out, n)
		}
	}
	return out
}
