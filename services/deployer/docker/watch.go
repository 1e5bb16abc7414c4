package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Reconnect backoff of Watch.
const (
	watchBackoffMin = 500 * time.Millisecond
	watchBackoffMax = 30 * time.Second
)

// watchedActions are the container events that change what a workload
// is or how it runs.
var watchedActions = []string{"create", "destroy", "rename", "start", "die", "health_status"}

// Watch follows the engine's container events and asks for a refresh of
// the workload each concerns (a temporary container's events concern its
// workload). After every (re)connect it sends Resync.
func (t *Target) Watch(ctx context.Context, changes chan<- target.Change) {
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		connected, err := t.watch(ctx, changes)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = watchBackoffMin
		}
		t.log.Warn("docker event stream lost; reconnecting", "error", err, "in", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(backoff*2, watchBackoffMax)
	}
}

// watch runs one connection of the event stream; connected reports that
// the engine answered.
func (t *Target) watch(ctx context.Context, changes chan<- target.Change) (connected bool, err error) {
	// The stream starts at the engine's own "now", read before the resync
	// is announced, so nothing between the listing and the stream is lost.
	info, err := t.c.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("engine info: %w", err)
	}
	t.mu.Lock()
	t.node = info.Name
	t.mu.Unlock()
	var since string
	if ts, err := time.Parse(time.RFC3339Nano, info.SystemTime); err == nil {
		since = fmt.Sprintf("%d.%09d", ts.Unix(), ts.Nanosecond())
	}
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", LabelPolicy),
	)
	for _, a := range watchedActions {
		args.Add("event", a)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := t.c.Events(sctx, events.ListOptions{Since: since, Filters: args})
	send := func(c target.Change) bool {
		select {
		case changes <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send(target.Change{Resync: true}) {
		return true, ctx.Err()
	}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("the engine closed the event stream")
			}
			return true, err
		case m := <-msgs:
			for _, n := range affected(m) {
				if !send(target.Change{Refresh: n}) {
					return true, ctx.Err()
				}
			}
		}
	}
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
