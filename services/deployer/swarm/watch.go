package swarm

import (
	"context"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"

	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Watch follows the engine's service events: a service created or updated
// (Swarm's own update status changes included) is a Refresh, a removed
// one Removed. After every (re)connect it sends Resync, since events
// while it was away are lost.
func (t *Target) Watch(ctx context.Context, changes chan<- target.Change) {
	send := func(ch target.Change) bool {
		select {
		case changes <- ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	dockerapi.FollowEvents(ctx, t.c, t.log,
		filters.NewArgs(filters.Arg("type", string(events.ServiceEventType))),
		func(system.Info) bool { return send(target.Change{Resync: true}) },
		func(m events.Message) bool {
			name := m.Actor.Attributes["name"]
			switch {
			case name == "":
				return true
			case m.Action == events.ActionRemove:
				return send(target.Change{Removed: name})
			default:
				return send(target.Change{Refresh: name})
			}
		})
}
