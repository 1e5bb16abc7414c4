package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render"
)

// recordTimeout bounds the write of a sent record, which runs detached from
// shutdown: a notification that went out must be recorded.
const recordTimeout = 10 * time.Second

// deliverer is the consumer of one receiver.
type deliverer struct {
	name, kind string
	receiver   notify.Receiver
	templates  *render.Templates
	limiter    *rate.Limiter
	router     *router
	state      *stateStore
	pub        *bus.Publisher
	log        *slog.Logger
	metrics    *metrics
	hooks      *Hooks
	// redactor keeps the configuration's secrets out of what a failure
	// says (see redact).
	redactor *config.Redactor
}

// failure is a channel that will not get its notification.
type failure struct {
	channel string
	err     error
}

// handle sends one event to the receiver's channels that have not had it
// yet. A retryable failure of any channel retries the event (the channels
// that got it are skipped next time); a final failure (Permanent, or the
// last attempt) is announced with notification.failed and dead-letters the
// event.
func (d *deliverer) handle(ctx context.Context, e events.Event) error {
	channels := d.router.channels(e, d.name)
	if len(channels) == 0 {
		return nil
	}
	msg, err := d.templates.Render(e)
	if err != nil {
		// The default rendering is better than no message at all.
		d.log.Warn("template failed on this event; sending the default message", "event_id", e.ID(), "type", e.Type(), "err", err)
	}
	var retry []error
	var final []failure
	for _, ch := range channels {
		err := d.send(ctx, e, ch, msg)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			// Shutting down: not the receiver's fault, the event comes back.
			return ctx.Err()
		}
		if bus.IsPermanent(err) {
			final = append(final, failure{ch, err})
		} else {
			retry = append(retry, err)
			if last(ctx) {
				final = append(final, failure{ch, err})
			}
		}
	}
	if last(ctx) {
		retry = nil
	}
	for _, f := range final {
		if err := d.announce(ctx, e, f); err != nil {
			d.log.Error("could not announce a failed notification", "event_id", e.ID(), "err", err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Retried (or dead-lettered on the last attempt): not dropped.
			return fmt.Errorf("announce failed notification: %w (after: %s)", err, f.err)
		}
	}
	switch {
	case len(retry) == 1:
		return retry[0] // keeps bus.RetryAfter visible to the consumer
	case len(retry) > 1:
		return errors.Join(retry...)
	case len(final) > 0:
		errs := make([]error, len(final))
		for i, f := range final {
			errs[i] = f.err
		}
		return bus.Permanent(errors.Join(errs...))
	}
	return nil
}

// tracer makes the span of each notification.
var tracer = otel.Tracer("github.com/slipway-cd/slipway/services/notifier")

// last reports whether this is the last attempt at the event.
func last(ctx context.Context) bool {
	dl, ok := bus.DeliveryFrom(ctx)
	return ok && dl.Last()
}

// send sends e to one channel of the receiver unless it was sent before.
func (d *deliverer) send(ctx context.Context, e events.Event, channel string, msg notify.Message) (err error) {
	// Internal: the HTTP request under it is the client span
	// (tracehttp), one per attempt.
	ctx, span := tracer.Start(ctx, "notify "+d.name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("slipway.receiver.name", d.name),
			attribute.String("slipway.receiver.kind", d.kind),
			attribute.String("slipway.receiver.channel", channel),
			attribute.String("cloudevents.event_id", e.ID()),
			attribute.String("cloudevents.event_type", e.Type()),
		))
	defer func() {
		if err != nil {
			// Redacted: a receiver's URL can hold its secret.
			span.RecordError(errors.New(d.redact(err).Error()))
			span.SetStatus(codes.Error, "notification failed")
		}
		span.End()
	}()
	log := d.log.With("event_id", e.ID(), "type", e.Type())
	if channel != "" {
		log = log.With("channel", channel)
	}
	key := SentKey(d.name, e.ID(), channel)
	sent, err := d.state.sent(ctx, key)
	if err != nil {
		// Not knowing is no reason to risk a duplicate: try again later.
		return err
	}
	if sent {
		span.SetAttributes(attribute.Bool("slipway.notification.already_sent", true))
		log.Debug("already sent; skipped")
		return nil
	}
	if err := d.limiter.Wait(ctx); err != nil {
		return err
	}
	start := time.Now()
	err = d.receiver.Notify(ctx, notify.Notification{Event: e, Channel: channel, Message: msg})
	d.metrics.duration.WithLabelValues(d.name).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// From here on the error goes to logs, traces, notification.failed
		// and the dead letters.
		err = d.redact(err)
		retryable := !bus.IsPermanent(err)
		d.metrics.failed.WithLabelValues(d.name, d.kind, strconv.FormatBool(retryable)).Inc()
		attempt := 0
		if dl, ok := bus.DeliveryFrom(ctx); ok {
			attempt = dl.Attempt
		}
		log.Warn("notification failed", "attempt", attempt, "retryable", retryable, "err", err)
		return err
	}
	d.metrics.sent.WithLabelValues(d.name, d.kind).Inc()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := d.state.record(rctx, key, sentRecord{Receiver: d.name, EventID: e.ID(), EventType: e.Type(), Channel: channel, SentAt: time.Now().UTC()}); err != nil {
		// Sent is sent: retrying the event now would send it again.
		log.Warn("notification sent but not recorded; a redelivery would send it again", "err", err)
	}
	log.Info("notification sent", "title", msg.Title)
	if d.hooks != nil && d.hooks.AfterSent != nil {
		return d.hooks.AfterSent(ctx, d.name, e.ID(), channel)
	}
	return nil
}

// announce publishes dev.slipway.notification.failed.v1 for a notification
// that will not be sent. Failures to send a notification.failed or an
// event.deadlettered are not announced: each failure announces the other
// (the event is dead-lettered, and a dead-lettered notification.failed is
// announced), so that would chain without end. They stay visible in the
// dead-letter stream.
func (d *deliverer) announce(ctx context.Context, e events.Event, f failure) error {
	if t := events.Type(e.Type()); t == events.TypeNotificationFailed || t == events.TypeEventDeadLettered {
		d.log.Error("notification of a failure failed; not announced again", "event_id", e.ID(), "type", e.Type(), "err", f.err)
		return nil
	}
	attempts := 1
	if dl, ok := bus.DeliveryFrom(ctx); ok {
		attempts = dl.Attempt
	}
	msg := f.err.Error()
	if f.channel != "" {
		msg = "channel " + f.channel + ": " + msg
	}
	ev, err := events.New(ctx, events.Spec{
		ID:          events.CausedID(e.ID(), events.TypeNotificationFailed, d.name, f.channel),
		Type:        events.TypeNotificationFailed,
		Source:      "/slipway/notifier/" + d.name,
		Environment: events.EnvironmentOf(e),
		Subject:     e.Subject(),
		CausationID: e.ID(),
		Data: events.NotificationFailed{
			Receiver: d.name, EventID: e.ID(), EventType: e.Type(), Error: msg, Attempts: attempts,
		},
	})
	if err != nil {
		return err
	}
	if _, err := d.pub.Publish(ctx, ev); err != nil {
		return err
	}
	d.log.Error("notification given up", "event_id", e.ID(), "type", e.Type(), "channel", f.channel, "attempts", attempts, "err", msg)
	return nil
}

// redact keeps the receiver's secrets out of a failure: the URL of a
// *url.Error (a Slack or Teams webhook URL is a secret as a whole), and any
// secret of the configuration an integration's error repeats.
func (d *deliverer) redact(err error) error {
	return d.redactor.Error(config.RedactError(err))
}
