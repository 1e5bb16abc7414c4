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

	// DefaultMaxBytes bounds the event stream when no size is configured.
	// An event takes about a KiB in the stream (an image.pushed or a
	// deployment event: 970 bytes with its headers), so 1 GiB holds about
	// a million: weeks of a busy installation, the 30 days of
	// DefaultMaxAge for most. It keeps the store well inside a small disk,
	// and a full stream drops its oldest events instead of refusing a
	// webhook.
	DefaultMaxBytes = 1 << 30
	// DefaultDeadLetterMaxBytes bounds the dead-letter stream. Dead letters
	// are the few events consumers gave up on, kept until an operator
	// looks; 256 MiB holds about two hundred thousand of them (the event
	// and why it was given up), more than anyone redrives, while leaving
	// the disk to the event stream.
	DefaultDeadLetterMaxBytes = 256 << 20
	// minDefaultMaxBytes is as far down as a default size goes on a server
	// that cannot reserve it (see EnsureStream): one message of NATS's
	// default maximum payload.
	minDefaultMaxBytes = 1 << 20
)

// StreamConfig is the part of the configuration that shapes the stream.
type StreamConfig struct {
	Name            string
	Replicas        int
	MaxAge          time.Duration
	DuplicateWindow time.Duration
	// MaxBytes bounds the event stream, DeadLetterMaxBytes the dead-letter
	// stream: 0 is the default (DefaultMaxBytes, DefaultDeadLetterMaxBytes,
	// or less on a server that cannot reserve that much), -1 no bound but
	// the server's. A full stream drops its oldest messages.
	MaxBytes           int64
	DeadLetterMaxBytes int64
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
	if c.MaxBytes < -1 || c.DeadLetterMaxBytes < -1 {
		return errors.New("maxBytes must be positive, 0 for the default or -1 for no bound")
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
	// Both streams keep the newest messages within their bounds (limits
	// retention, DiscardOld): when one is full the oldest go, and a
	// publish, a webhook's in particular, is never refused for space.
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
	}, cfg.MaxBytes, DefaultMaxBytes)
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
		Discard:     jetstream.DiscardOld,
	}, cfg.DeadLetterMaxBytes, DefaultDeadLetterMaxBytes); err != nil {
		return nil, err
	}
	return s, nil
}

// ensure creates the stream, or updates an existing one to sc (a changed
// bound applies at once: a smaller one drops the oldest messages beyond
// it). maxBytes 0 is def, unless the server cannot reserve that much (its
// store is a small disk: an embedded server offers 75% of the free space):
// then the stream gets half of the largest half, quarter… of def that the
// server can reserve, down to 1 MiB, so that the default fits any disk and
// leaves room for the other streams and buckets; at the next start the
// same size fits again and stays. A configured size is taken as it is, or
// fails.
//
// A server whose storage shrank below what its streams reserve (the disk
// filled up since they were made) refuses every change to their limits,
// even a smaller bound, although the streams work. An existing stream is
// then kept as it is, rather than failing the start: the caller sees its
// limits in the stream's info.
func ensure(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig, maxBytes, def int64) (jetstream.Stream, error) {
	existing, err := js.Stream(ctx, sc.Name)
	if err != nil {
		existing = nil
	}
	var current int64
	if existing != nil {
		current = existing.CachedInfo().Config.MaxBytes
	}
	sc.MaxBytes = maxBytes
	if maxBytes == 0 {
		sc.MaxBytes = def
	}
	for {
		s, err := createOrUpdate(ctx, js, sc)
		if err == nil && maxBytes == 0 && sc.MaxBytes < def && sc.MaxBytes != current && sc.MaxBytes/2 >= minDefaultMaxBytes {
			sc.MaxBytes /= 2 // shrinking fits if growing did
			s, err = createOrUpdate(ctx, js, sc)
		}
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errInsufficientStorage) {
			return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
		if maxBytes == 0 && sc.MaxBytes/2 >= minDefaultMaxBytes {
			sc.MaxBytes /= 2
			continue
		}
		if existing != nil {
			return existing, nil
		}
		return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
	}
}

// createOrUpdate updates the stream first: the server checks a creation's
// size against its storage before it notices the stream exists, and an
// update's only by what it adds.
func createOrUpdate(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.UpdateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another process was first
			s, err = js.UpdateStream(ctx, sc)
		}
	}
	return s, err
}

// errInsufficientStorage matches (errors.Is) the server's answer to a
// stream larger than the storage it has left to reserve.
// (nats-server's JSStorageResourcesExceededErr, which nats.go does not
// name).
var errInsufficientStorage = &jetstream.APIError{ErrorCode: 10047}
