package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Reconnect backoff of FollowEvents: doubling from the first to the last,
// back to the first once the engine answered.
const (
	EventsBackoffMin = 500 * time.Millisecond
	EventsBackoffMax = 30 * time.Second
)

// FollowEvents reads the engine's events that match f until ctx ends,
// reconnecting by itself. At every (re)connect it calls connected with the
// engine's info, then handle for each event; either returning false ends
// it. Each connection's stream begins at the engine's own clock as read
// before connected is called, so nothing that happens after connected
// (a listing, say) goes unseen.
func FollowEvents(ctx context.Context, c *client.Client, log *slog.Logger, f filters.Args,
	connected func(system.Info) bool, handle func(events.Message) bool) {
	backoff := EventsBackoffMin
	for ctx.Err() == nil {
		answered, stop, err := followOnce(ctx, c, f, connected, handle)
		if stop || ctx.Err() != nil {
			return
		}
		if answered {
			backoff = EventsBackoffMin
		}
		log.Warn("Docker event stream lost; reconnecting", "endpoint", config.RedactURL(c.DaemonHost()), "error", err, "in", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, EventsBackoffMax)
	}
}

func followOnce(ctx context.Context, c *client.Client, f filters.Args,
	connected func(system.Info) bool, handle func(events.Message) bool) (answered, stop bool, err error) {
	if err := Ready(ctx, c); err != nil {
		return false, false, fmt.Errorf("engine: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, false, fmt.Errorf("engine info: %w", err)
	}
	var since string
	if ts, err := time.Parse(time.RFC3339Nano, info.SystemTime); err == nil {
		since = fmt.Sprintf("%d.%09d", ts.Unix(), ts.Nanosecond())
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := c.Events(sctx, events.ListOptions{Since: since, Filters: f})
	if !connected(info) {
		return true, true, nil
	}
	for {
		select {
		case <-ctx.Done():
			return true, true, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("the engine closed the event stream")
			}
			return true, false, err
		case m := <-msgs:
			if !handle(m) {
				return true, true, nil
			}
		}
	}
}
