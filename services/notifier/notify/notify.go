// Package notify is the contract between the notifier and its integrations
// (Slack, Microsoft Teams, signed webhooks, e-mail, CDEvents): one
// interface, Receiver, implemented by one package per integration, in the
// manner of Prometheus Alertmanager's notify package.
package notify

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
)

// Receiver sends notifications to one configured target.
//
// Notify must return nil only once the target accepted the message. Wrap
// the error with bus.RetryAfter(err, d) when the target said when to come
// back (HTTP 429 Retry-After), and with bus.Permanent(err) when no retry
// can succeed (a 400 for a malformed message, an unknown channel); any other
// error is retried with back-off. The notifier guarantees at most one
// successful Notify per (receiver, event, channel).
type Receiver interface {
	// Name is the receiver's name in the configuration.
	Name() string
	// Kind is the integration: slack, msteams, webhook, email, cdevents.
	Kind() string
	Notify(ctx context.Context, n Notification) error
}

// Notification is one event to send, already rendered.
type Notification struct {
	Event events.Event
	// Channel overrides the receiver's own target, from an app's
	// slipway.notify label ("slack:#payments" → "#payments"); "" for the
	// receiver's configured one.
	Channel string
	Message Message
}

// Message is the rendering of an event that every integration starts from.
type Message struct {
	// Title is one short line: "apps/web 1.4.0 pushed to dev".
	Title string
	// Text is plain text (Markdown-free), a few lines at most.
	Text string
	// HTML is the body for e-mail.
	HTML string
	// Status is what happened, in a word or two: pushed, promoted,
	// deployed, rolled back, failed, approval requested, approved,
	// rejected, drift, notification failed.
	Status string
	// Severity colours the message: good, warning, danger or info.
	Severity string
	// Facts are labelled values shown as a table or fields.
	Facts []Fact
	// Thread groups the messages of one release (the image digest, or
	// repository:tag without one): Slack posts them as one thread.
	Thread string
	// ThreadTitle is the title of the thread's parent message.
	ThreadTitle string
	// Approval is set on approval.requested: integrations that can, offer
	// Approve / Reject buttons for it.
	Approval *Approval
	// Link points to more detail, when there is something to link to.
	Link string
}

// Fact is a labelled value.
type Fact struct {
	Name, Value string
}

// Approval identifies a decision a message can offer.
type Approval struct {
	ID        string
	Promotion string
	Approvers []string
}

// Severities.
const (
	Good    = "good"
	Warning = "warning"
	Danger  = "danger"
	Info    = "info"
)

// Options are what the notifier hands every integration's constructor
// (notifier.Constructor), which reads its own kind's block of cfg:
//
//	func New(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error)
type Options struct {
	Logger *slog.Logger
	// HTTPClient is the client for HTTP integrations (timeouts set).
	HTTPClient *http.Client
	// JS lets an integration keep state (Slack keeps its threads in a KV
	// bucket).
	JS jetstream.JetStream
	// Replicas is the replica count for the buckets an integration creates.
	Replicas int
}

// Refused marks err, the failure of an answer that d classified (see
// httpretry for the rule), for the notifier's retries: bus.Permanent for a
// permanent answer, bus.RetryAfter with the server's Retry-After ("0": the
// shortest back-off), else err as it is, retried with back-off.
func Refused(err error, d httpretry.Decision) error {
	switch {
	case d.Outcome == httpretry.Permanent:
		return bus.Permanent(err)
	case d.HasAfter:
		return bus.RetryAfter(err, d.After)
	default:
		return err
	}
}
