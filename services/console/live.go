package console

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/services/console/auth"
)

// startLive starts following the event stream: the recent-event store,
// and the hub that fans its new events out to the live streams.
func (s *server) startLive(ctx context.Context) error {
	s.recent = newEventStore(s.cfg.Console.Events, s.log)
	s.live = newHub()
	s.recent.onAppend = s.live.publish
	if err := s.recent.start(ctx, s.deps.JS, s.streamName()); err != nil {
		return err
	}
	s.closers = append(s.closers, s.recent.stop, s.live.close)
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
func (s *server) mountLive(g *echo.Group) {
	g.GET("/timeline", s.timelinePage)
	g.GET("/timeline/stream", s.timelineStream)
	g.GET("/api/events", s.apiEvents)
	g.GET("/audit", s.auditPage)
	g.GET("/api/audit", s.auditPage)
	g.GET("/approvals", s.approvalsPage)
	g.POST("/approvals/decide", s.decideApproval)
	g.GET("/deadletters", s.deadLettersPage)
	g.POST("/deadletters/redrive", s.redriveDeadLetters)
	g.GET("/deadletters/:seq", s.deadLetterPage)
	g.POST("/deadletters/:seq/redrive", s.redriveDeadLetters)
	g.POST("/actions/:action", s.action)
}

// testUser, set only by tests, replaces the login's user: it lets a test
// ask as a user with a given role without an OpenID provider.
var testUser func(echo.Context) (auth.User, bool)

// user is who asks.
func (s *server) user(c echo.Context) auth.User {
	if testUser != nil {
		if u, ok := testUser(c); ok {
			return u
		}
	}
	return auth.UserOf(c)
}
