// Package actions announces the manual actions a person takes (rollback,
// redeploy, promote, redrive) as dev.slipway.action.requested.v1 events,
// the same way from every interface: the API, the CLI, the console and
// Slack. The event is the action's audit record; the deployer (rollback,
// redeploy) and the promoter (promote) carry it out when they consume it,
// and name it as the causation of what they do. A redrive is carried out by
// the interface right after the announcement (bus.Redrive).
package actions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// MaxReasonLength bounds a reason, in characters.
const MaxReasonLength = 1024

// Request is one manual action as an interface received it.
type Request struct {
	// ID identifies the request: the same ID gives the same event id, so
	// an interface that retries publishing (or a client that repeats its
	// request with the same Idempotency-Key) announces it once. NewID
	// makes one.
	ID     string
	Action string
	Actor  string
	Via    string
	Target events.ActionTarget
	Reason string
}

// NewID returns a fresh random request id.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	knownActions = []string{events.ActionRollback, events.ActionRedeploy, events.ActionPromote, events.ActionRedrive}
	knownVia     = []string{events.ViaAPI, events.ViaCLI, events.ViaConsole, events.ViaSlack}
)

// ErrInvalid wraps every reason Validate refuses a request for.
var ErrInvalid = errors.New("invalid action")

// Validate says what is missing from r, in words for the person who asked.
func (r Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	t := r.Target
	switch {
	case r.ID == "":
		return bad("the request has no id")
	case !slices.Contains(knownActions, r.Action):
		return bad("unknown action %q (one of %s)", r.Action, strings.Join(knownActions, ", "))
	case !slices.Contains(knownVia, r.Via):
		return bad("unknown interface %q (one of %s)", r.Via, strings.Join(knownVia, ", "))
	case strings.TrimSpace(r.Actor) == "":
		return bad("the actor is unknown")
	case !events.ValidToken(t.Environment):
		return bad("the target's environment %q is not a valid environment name", t.Environment)
	case len([]rune(r.Reason)) > MaxReasonLength:
		return bad("the reason is longer than %d characters", MaxReasonLength)
	}
	switch r.Action {
	case events.ActionRollback, events.ActionRedeploy:
		if t.Cluster == "" || t.AppID == "" {
			return bad("%s needs a cluster and a workload", r.Action)
		}
	case events.ActionPromote:
		if t.Image == "" || t.Promotion == "" {
			return bad("promote needs the image to promote and the promotion rule (PromoteTarget finds it)")
		}
	case events.ActionRedrive:
		if t.Sequence == 0 {
			return bad("redrive needs the dead letter's sequence")
		}
	}
	return nil
}

// Source is the CloudEvents source of the action events of interface via.
func Source(via string) string { return "/slipway/" + via }

// Event builds r's event; its id depends only on r.ID.
func Event(ctx context.Context, r Request, now time.Time) (events.Event, error) {
	if err := r.Validate(); err != nil {
		return events.Event{}, err
	}
	subject := ""
	switch r.Action {
	case events.ActionRollback, events.ActionRedeploy:
		subject = r.Target.Cluster + ":" + r.Target.AppID
	case events.ActionPromote:
		subject = r.Target.Image
	}
	return events.New(ctx, events.Spec{
		ID:          events.ID("action.requested", r.ID),
		Type:        events.TypeActionRequested,
		Source:      Source(r.Via),
		Environment: r.Target.Environment,
		Subject:     subject,
		Time:        now,
		Data: events.ActionRequested{
			Action: r.Action, Actor: r.Actor, Via: r.Via, Target: r.Target,
			Reason: r.Reason, RequestedAt: now.UTC(),
		},
	})
}

// Publish announces r on the stream and returns its event once JetStream
// stored it. Publishing the same request again is harmless: the event id
// is the same, and JetStream drops the copy.
func Publish(ctx context.Context, pub *bus.Publisher, r Request, now time.Time) (events.Event, error) {
	e, err := Event(ctx, r, now)
	if err != nil {
		return e, err
	}
	if _, err := pub.Publish(ctx, e); err != nil {
		return e, fmt.Errorf("announcing the %s: %w", r.Action, err)
	}
	return e, nil
}
