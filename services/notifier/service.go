// Package notifier is Slipway's notifier service: it consumes every event,
// routes it to the configured receivers (and to the targets of an app's
// slipway.notify label), renders it, and sends it through the receiver's
// integration, at most once per (receiver, event, channel), in stream order
// per receiver, with retries that survive restarts and a
// dev.slipway.notification.failed.v1 event when a receiver gives up.
package notifier

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/tracehttp"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render"
)

// Defaults of the delivery of one event to one receiver.
var (
	// DefaultMaxDeliver is how many times an event is tried per receiver.
	DefaultMaxDeliver = 8
	// DefaultBackOff is the delay before each retry (the last repeats):
	// about nine minutes from the first attempt to the last.
	DefaultBackOff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute}
	// DefaultHTTPTimeout bounds one request of an HTTP integration.
	DefaultHTTPTimeout = 30 * time.Second
)

// Default rate limits per receiver: Slack's documented limit for
// chat.postMessage is one message per second per channel, with short bursts.
const (
	slackRate, slackBurst = 1, 3
	otherRate, otherBurst = 5, 10
)

// Service is the notifier, an app.Service.
type Service struct {
	// Integrations builds receivers by kind; DefaultIntegrations() when nil.
	Integrations map[string]Constructor
	// MaxDeliver is how many times an event is tried per receiver before
	// it is given up (DefaultMaxDeliver when 0).
	MaxDeliver int
	// BackOff is the delay before each retry, the last one repeating
	// (DefaultBackOff when empty). A receiver's Retry-After replaces it.
	BackOff []time.Duration
	// HTTPClient is handed to HTTP integrations (its transport wrapped in
	// client spans); one with DefaultHTTPTimeout when nil.
	HTTPClient *http.Client
	// Hooks are for tests.
	Hooks *Hooks
}

// Hooks let tests stop the notifier at chosen points.
type Hooks struct {
	// AfterSent runs once a receiver accepted a notification and the
	// notifier recorded it, before the event is acknowledged. An error it
	// returns becomes the handler's: a test cancels the service there and
	// returns ctx.Err() to play a crash at the worst moment.
	AfterSent func(ctx context.Context, receiver, eventID, channel string) error
}

// New returns the notifier service.
func New() *Service { return &Service{} }

var _ app.Service = (*Service)(nil)

// Name is how --only selects the service.
func (*Service) Name() string { return "notifier" }

// ConsumerName is the durable consumer of a receiver: each receiver keeps
// its own position in the stream, so one that is down holds back nobody else.
func ConsumerName(receiver string) string { return "notifier-" + receiver }

// Run notifies until ctx ends.
func (s *Service) Run(ctx context.Context, d app.Deps) error {
	cfg := d.Config
	// A Config built in Go has not been through the loader's checks.
	integrations := s.constructors()
	var problems config.Problems
	checkConfig(cfg, integrations, &problems)
	if err := problems.Err(); err != nil {
		return err
	}
	if len(cfg.Notify.Receivers) == 0 {
		d.Log.Warn("no receivers configured; the notifier has nothing to do")
		<-ctx.Done()
		return nil
	}
	replicas := max(cfg.NATS.Stream.Replicas, 1)
	keep := cfg.NATS.Stream.MaxAge
	if keep == 0 {
		keep = bus.DefaultMaxAge
	}
	st, err := openState(ctx, d.JS, replicas, keep)
	if err != nil {
		return err
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: DefaultHTTPTimeout}
	if s.HTTPClient != nil {
		c := *s.HTTPClient // never change the caller's client
		client = &c
	}
	// Each request is a client span of the event's trace, and the receiver
	// gets its traceparent; a receiver's URL is a secret as a whole.
	client.Transport = tracehttp.Transport(client.Transport, config.RedactSecretURL)
	maxDeliver := s.MaxDeliver
	if maxDeliver == 0 {
		maxDeliver = DefaultMaxDeliver
	}
	backOff := s.BackOff
	if len(backOff) == 0 {
		backOff = slices.Clone(DefaultBackOff)
	}
	rt := newRouter(cfg.Notify)
	pub := bus.NewPublisher(d.JS, d.Stream)

	var consumers []*bus.Consumer
	defer func() {
		for _, c := range consumers {
			c.Stop()
		}
	}()
	redactor := cfg.Redactor()
	for i, rc := range cfg.Notify.Receivers {
		kind := Kind(rc)
		log := d.Log.With("receiver", rc.Name, "kind", kind)
		r, err := integrations[kind](rc.Name, rc, notify.Options{Logger: log, HTTPClient: client, JS: d.JS, Replicas: replicas})
		if err != nil {
			return fmt.Errorf("notify.receivers[%d] (%s): %w", i, rc.Name, err)
		}
		tmpl, err := render.Compile(rc.Templates)
		if err != nil {
			return fmt.Errorf("notify.receivers[%d] (%s): %w", i, rc.Name, err)
		}
		dl := &deliverer{
			name: rc.Name, kind: kind, receiver: r, templates: tmpl, limiter: limiter(rc, kind),
			router: rt, state: st, pub: pub, log: log, metrics: m, hooks: s.Hooks, redactor: redactor,
		}
		c, err := d.Consume(ctx, bus.ConsumerConfig{
			Stream:         d.Stream,
			Durable:        ConsumerName(rc.Name),
			FilterSubjects: []string{events.SubjectPrefix + ".>"},
			DeliverNew:     true,
			MaxDeliver:     maxDeliver,
			BackOff:        backOff,
			// One event at a time, and none handed out while one waits
			// for its retry: a receiver gets its messages in stream order
			// (a Slack thread must read in order), across replicas too.
			Concurrency:   1,
			MaxAckPending: 1,
			Logger:        log,
		}, dl.handle)
		if err != nil {
			return fmt.Errorf("receiver %s: %w", rc.Name, err)
		}
		consumers = append(consumers, c)
		log.Info("notifying", "consumer", ConsumerName(rc.Name))
	}
	<-ctx.Done()
	return nil
}

// limiter is the rate limit of one receiver: the configured one, or the
// kind's default.
func limiter(rc config.Receiver, kind string) *rate.Limiter {
	r, b := float64(otherRate), otherBurst
	if kind == KindSlack {
		r, b = slackRate, slackBurst
	}
	if rc.RateLimit > 0 {
		r = rc.RateLimit
	}
	if rc.Burst > 0 {
		b = rc.Burst
	}
	return rate.NewLimiter(rate.Limit(r), max(b, 1))
}
