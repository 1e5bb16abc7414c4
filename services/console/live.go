package console

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// startLive starts following the event stream: the recent-event store.
func (s *server) startLive(ctx context.Context) error {
	s.recent = newEventStore(s.cfg.Console.Events, s.log)
	if err := s.recent.start(ctx, s.deps.JS, s.streamName()); err != nil {
		return err
	}
	s.closers = append(s.closers, s.recent.stop)
	if s.deps.Health != nil {
		s.deps.Health.Add("console-recent-events", s.recent.caughtUp)
	}
	return nil
}

// streamName is the event stream's name.
func (s *server) streamName() string {
	if s.deps.Stream != "" {
		return s.deps.Stream
	}
	return bus.DefaultStream
}

// mountLive mounts the event-driven views and the actions.
func (s *server) mountLive(g *echo.Group) {}
