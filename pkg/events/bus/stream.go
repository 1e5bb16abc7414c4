package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
)

// Defaults of the contract.
const (
	DefaultStream          = "SLIPWAY"
	DefaultMaxAge          = 720 * time.Hour
	DefaultDuplicateWindow = 10 * time.Minute
	// MinDuplicateWindow is the shortest window the contract allows:
	// registries retry for minutes.
	MinDuplicateWindow = 10 * time.Minute
)

// StreamConfig is the part of the configuration that shapes the stream.
type StreamConfig struct {
	Name            string
	Replicas        int
	MaxAge          time.Duration
	DuplicateWindow time.Duration
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStream
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	return c
}

// Validate reports a configuration the contract does not allow.
func (c StreamConfig) Validate() error {
	c = c.withDefaults()
	if c.Replicas != 1 && c.Replicas != 3 {
		return fmt.Errorf("replicas must be 1 or 3, not %d", c.Replicas)
	}
	if c.DuplicateWindow < MinDuplicateWindow {
		return fmt.Errorf("duplicateWindow must be at least %s (registries retry), not %s", MinDuplicateWindow, c.DuplicateWindow)
	}
	if c.MaxAge < c.DuplicateWindow {
		return fmt.Errorf("maxAge %s is shorter than duplicateWindow %s", c.MaxAge, c.DuplicateWindow)
	}
	return nil
}

// DeadLetterStreamName is the stream that keeps what consumers gave up on,
// next to the event stream.
func DeadLetterStreamName(stream string) string { return stream + "_DLQ" }

// DeadLetterSubjectPrefix starts every dead-letter subject. It is outside
// "slipway.>" because two streams cannot share subjects.
const DeadLetterSubjectPrefix = "slipway-dlq"

// EnsureStream creates the event stream and its dead-letter stream, or
// updates them to the configured limits, and returns the event stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s, err := ensure(ctx, js, jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "Slipway events (CloudEvents, structured JSON mode)",
		Subjects:    []string{events.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, err
	}
	if _, err := ensure(ctx, js, jetstream.StreamConfig{
		Name:        DeadLetterStreamName(cfg.Name),
		Description: "Slipway events that a consumer gave up on, with the consumer and the last error in headers",
		Subjects:    []string{DeadLetterSubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.DuplicateWindow,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

func ensure(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.UpdateStream(ctx, sc)
	}
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
	}
	return s, nil
}
