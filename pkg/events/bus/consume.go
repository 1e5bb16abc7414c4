package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
)

// Handler processes one event.
//
// It must be idempotent: JetStream delivers at least once, so the same event
// comes again after an error, after a crash or lost ack, and when a stopping
// process hands it back. Return nil when the event is done (or deliberately
// ignored), an error to have it retried with back-off, Permanent(err) when a
// retry cannot help, and RetryAfter(err, d) when the other side said when to
// come back. The context is cancelled only when the ctx given to Consume is;
// a handler should honour it and bound its own work, because the message is
// kept from redelivery for as long as the handler runs.
type Handler func(ctx context.Context, e events.Event) error

// Consumer defaults.
var (
	DefaultMaxDeliver = 5
	DefaultBackOff    = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	DefaultAckWait    = 30 * time.Second
)

// ConsumerConfig describes a durable consumer of the event stream.
type ConsumerConfig struct {
	// Stream defaults to DefaultStream.
	Stream string
	// Durable names the consumer. Processes using the same name share the
	// work; the name is also a token of the dead-letter subject, so it may
	// hold only letters, digits, '-' and '_'.
	Durable string
	// FilterSubjects selects events, e.g. events.FilterSubject(...). Empty
	// means every event on the stream.
	FilterSubjects []string
	// DeliverNew makes a durable that does not exist yet start with events
	// published after its creation instead of the whole retained history.
	// An existing durable keeps its position whatever this says.
	DeliverNew bool
	// MaxDeliver is how many times an event is handed to the handler before
	// it is dead-lettered (default 5).
	MaxDeliver int
	// BackOff is the delay before the n-th retry; the last value repeats
	// (default 1s, 5s, 30s, 2m).
	BackOff []time.Duration
	// AckWait is how long the server waits for a sign of life before it
	// redelivers, e.g. after a crash (default 30s). A running handler keeps
	// its message alive, so this does not bound handler time.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged events across all processes of the
	// durable (0: the server's default).
	MaxAckPending int
	// Concurrency is how many handlers run in parallel in this process
	// (default 1).
	Concurrency int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnDeadLetter, when set, is called once for each message this process
	// stores in the dead-letter stream (not again for a redelivery whose
	// copy was already there), with Seq set to its dead-letter sequence.
	// It runs before the message is settled, so it must be quick; it lets
	// a process count dead letters without this package knowing how.
	OnDeadLetter func(DeadLetter)
}

func (c ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if !events.ValidToken(c.Durable) {
		return c, fmt.Errorf("consumer durable %q must be a non-empty subject token (letters, digits, '-' and '_')", c.Durable)
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxDeliver < 0 {
		return c, fmt.Errorf("consumer %s: maxDeliver must be positive, not %d", c.Durable, c.MaxDeliver)
	}
	if len(c.BackOff) == 0 {
		c.BackOff = slices.Clone(DefaultBackOff)
	}
	for _, d := range c.BackOff {
		if d < 0 {
			return c, fmt.Errorf("consumer %s: negative back-off %s", c.Durable, d)
		}
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.AckWait < 0 || c.MaxAckPending < 0 || c.Concurrency < 0 {
		return c, fmt.Errorf("consumer %s: ackWait, maxAckPending and concurrency cannot be negative", c.Durable)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Dead-letter headers, added to a copy of the original message (whose own
// headers are kept, except the Nats-* ones that would steer the publish).
const (
	HeaderDLQConsumer   = "Slipway-Dlq-Consumer"
	HeaderDLQError      = "Slipway-Dlq-Error"
	HeaderDLQStream     = "Slipway-Dlq-Stream"
	HeaderDLQSequence   = "Slipway-Dlq-Sequence"
	HeaderDLQDeliveries = "Slipway-Dlq-Deliveries"
	HeaderDLQSubject    = "Slipway-Dlq-Subject"
	HeaderDLQTime       = "Slipway-Dlq-Time"
)

// maxErrorHeader keeps a chatty error (an HTML error page, say) from
// bloating or, with max_payload, blocking the dead-letter message.
const maxErrorHeader = 1024

// DeadLetterSubject is where consumer durable dead-letters a message that
// arrived on subject.
func DeadLetterSubject(durable, subject string) string {
	return DeadLetterSubjectPrefix + "." + durable + "." + subject
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that no retry can fix (a malformed payload, a
// 404, a rejected signature): the event is dead-lettered at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter asks for the next attempt after d instead of the configured
// back-off, e.g. for an HTTP 429 with Retry-After. d <= 0 ("Retry-After:
// 0") is the back-off's first step, whatever the attempt. It still counts
// as a failed delivery towards MaxDeliver.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: d}
}

// Delivery describes the delivery a handler is working on.
type Delivery struct {
	Consumer string
	Stream   string
	Subject  string
	// Sequence is the stream sequence of the message.
	Sequence uint64
	// Attempt is 1 on the first delivery.
	Attempt    int
	MaxDeliver int
}

// Last reports whether a failure now dead-letters the event, e.g. for a
// handler that reports a final failure itself.
func (d Delivery) Last() bool { return d.Attempt >= d.MaxDeliver }

type deliveryKey struct{}

// DeliveryFrom returns the delivery of the event a handler was called with.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// Consumer runs a handler on a durable consumer; see Consume.
type Consumer struct {
	js   jetstream.JetStream
	cfg  ConsumerConfig
	h    Handler
	log  *slog.Logger
	ctx  context.Context // handlers' parent; cancelled on hard stop
	stop context.CancelFunc

	mu       sync.Mutex
	it       jetstream.MessagesContext
	stopping bool
	stopCh   chan struct{}
	err      error
	drained  chan struct{} // the iterator is closed
	done     chan struct{}
}

// opTimeout bounds acks and dead-letter publishes, which run on a context
// detached from shutdown so that finished work is still settled.
const opTimeout = 10 * time.Second

// reopenDelay paces attempts to recover from a lost consumer (deleted by an
// operator, say) so that a persistent failure does not spin.
const reopenDelay = time.Second

// Consume creates or updates the durable pull consumer described by cfg and
// runs h on its events until Stop is called or ctx is cancelled.
//
// A nil error acks the event (and waits for the server to confirm it). Any
// other error redelivers it after the back-off for that attempt, or after
// the RetryAfter delay; a Permanent error, a message that is not a CloudEvent,
// and a failure on the last allowed delivery dead-letter it: a copy goes to
// DeadLetterSubject(durable, subject) on the dead-letter stream, an
// event.deadlettered event announces it on the event stream (see
// DeadLetteredEvent), and only once both are stored is the original
// terminated. A panic in h counts as an error. The server-side consumer has
// no delivery limit so that an event is never dropped when the dead-letter
// publish fails; the limit is enforced here.
func Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, h Handler) (*Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("consume: nil handler")
	}
	c := &Consumer{
		js:      js,
		cfg:     cfg,
		h:       h,
		log:     cfg.Logger.With("stream", cfg.Stream, "consumer", cfg.Durable),
		stopCh:  make(chan struct{}),
		drained: make(chan struct{}),
		done:    make(chan struct{}),
	}
	// Without it every failure would be retried for ever, and noticed late.
	// A missing stream is final; no answer (a leader election under way, a
	// server restarting) is waited out, as opening the consumer is.
	if err := c.whileTransient(ctx, "find the dead-letter stream", func(octx context.Context) error {
		_, err := js.Stream(octx, DeadLetterStreamName(cfg.Stream))
		return err
	}); err != nil {
		return nil, fmt.Errorf("consumer %s: dead-letter stream %s (EnsureStream creates it): %w", cfg.Durable, DeadLetterStreamName(cfg.Stream), err)
	}
	it, err := c.openFirst(ctx)
	if err != nil {
		return nil, err
	}
	c.it = it
	c.ctx, c.stop = context.WithCancel(ctx)
	go c.run()
	go func() {
		select {
		case <-c.ctx.Done():
			c.requestStop()
		case <-c.done:
		}
	}()
	return c, nil
}

func (c *Consumer) open(ctx context.Context) (jetstream.MessagesContext, error) {
	jc := jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.cfg.MaxAckPending,
		FilterSubjects: c.cfg.FilterSubjects,
	}
	// The back-off is applied with NakWithDelay rather than as the server's
	// BackOff: the server would use BackOff[n] instead of AckWait as the time
	// a handler has, so a short first back-off would redeliver events to
	// another replica while the first one still works on them.
	cons, err := c.createOrUpdate(ctx, jc)
	if err != nil {
		return nil, err
	}
	// A buffer no larger than the worker pool keeps events from ageing
	// towards AckWait in this process while other replicas sit idle. The
	// short expiry and heartbeat notice a consumer lost with its cluster
	// node after about 2 × pullHeartbeat instead of the client's 30 s.
	it, err := cons.Messages(jetstream.PullMaxMessages(c.cfg.Concurrency),
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return nil, fmt.Errorf("consume %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	return it, nil
}

// openFirst opens the consumer at start, waiting out what passes (a
// reconnect, a cluster electing the consumer's leader) as reopen does; a
// refusal by the server (bad configuration) fails at once.
func (c *Consumer) openFirst(ctx context.Context) (jetstream.MessagesContext, error) {
	var it jetstream.MessagesContext
	err := c.whileTransient(ctx, "open consumer", func(octx context.Context) error {
		var err error
		it, err = c.open(octx)
		return err
	})
	return it, err
}

// whileTransient runs f (each time bounded by opTimeout) until it succeeds,
// fails with an answer of the server (an API error: final), or ctx ends;
// other failures (no answer, no responders) are retried with back-off.
func (c *Consumer) whileTransient(ctx context.Context, what string, f func(context.Context) error) error {
	delay := reopenDelay
	for {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		err := f(octx)
		cancel()
		var apiErr *jetstream.APIError
		if err == nil || errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
			return err
		}
		c.log.Warn(what+"; retrying", "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// Pull request settings: see open.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// createOrUpdate creates the durable, or updates an existing one while
// keeping its position (the deliver policy of a consumer cannot change).
func (c *Consumer) createOrUpdate(ctx context.Context, jc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for attempt := 0; ; attempt++ {
		existing, err := c.js.Consumer(ctx, c.cfg.Stream, c.cfg.Durable)
		switch {
		case err == nil:
			old := existing.CachedInfo().Config
			jc.DeliverPolicy, jc.OptStartSeq, jc.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
			cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jc)
			if err != nil {
				return nil, fmt.Errorf("update consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
			}
			return cons, nil
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil, fmt.Errorf("consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
		}
		create := jc
		if c.cfg.DeliverNew {
			// On a cluster, "new" is fixed only once the consumer's leader
			// is elected, seconds after the create returned, and events
			// stored in between would be skipped; the stream's last
			// sequence, read now, fixes it at creation.
			st, err := c.js.Stream(ctx, c.cfg.Stream)
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", c.cfg.Stream, err)
			}
			create.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			create.OptStartSeq = st.CachedInfo().State.LastSeq + 1
		}
		cons, err := c.js.CreateConsumer(ctx, c.cfg.Stream, create)
		if errors.Is(err, jetstream.ErrConsumerExists) && attempt < 2 {
			continue // another replica created it first: join that one
		}
		if err != nil {
			return nil, fmt.Errorf("create consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
		}
		return cons, nil
	}
}

// Stop stops fetching, hands events fetched but not started back to the
// server for immediate redelivery, and waits for running handlers to finish
// and their results to be settled. Cancel the ctx given to Consume to also
// cancel the running handlers. A handler must not call Stop: it would wait
// for itself.
func (c *Consumer) Stop() {
	c.requestStop()
	<-c.done
}

// Done is closed once the consumer has stopped.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Err tells why a consumer stopped without being asked to (the NATS
// connection was closed), once Done is closed.
func (c *Consumer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Consumer) requestStop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return
	}
	c.stopping = true
	close(c.stopCh)
	if c.it != nil {
		// Drain rather than Stop so that buffered events come out of Next
		// and can be handed back at once instead of after AckWait.
		c.it.Drain()
	}
}

func (c *Consumer) isStopping() bool {
	select {
	case <-c.stopCh:
		return true
	default:
		return false
	}
}

func (c *Consumer) run() {
	var wg sync.WaitGroup
	var handBack []jetstream.Msg
	defer func() {
		// Only now that the iterator is drained, and the server knows that
		// nobody listens on its pull requests, can events be handed back
		// without the server redelivering them straight to this process.
		close(c.drained)
		for _, m := range handBack {
			c.handBack(m)
		}
		wg.Wait()
		c.stop()
		close(c.done)
	}()
	slots := make(chan struct{}, c.cfg.Concurrency)
	for {
		// Take a worker slot before taking a message, so that a message is
		// only removed from the buffer when it can start at once. Once
		// stopping, what comes out is handed back and needs no slot.
		slot := false
		select {
		case slots <- struct{}{}:
			slot = true
		case <-c.stopCh:
		}
		c.mu.Lock()
		it := c.it
		c.mu.Unlock()
		msg, err := it.Next()
		if err != nil {
			if slot {
				<-slots
			}
			if !c.reopen(it, err) {
				return
			}
			continue
		}
		if c.isStopping() {
			if slot {
				<-slots
			}
			handBack = append(handBack, msg)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			c.process(msg)
		}()
	}
}

// handBack returns an event this process will not handle for immediate
// redelivery, once the iterator is drained. The redelivery counts as an
// attempt.
func (c *Consumer) handBack(msg jetstream.Msg) {
	<-c.drained
	if err := msg.Nak(); err != nil {
		c.log.Warn("hand back event on stop; it is redelivered after ack wait", "subject", msg.Subject(), "err", err)
	}
}

// reopen decides what to do after the iterator failed: stop when asked to
// or when the connection is gone for good, otherwise open the consumer again
// (an operator may have deleted it, or a cluster lost it).
func (c *Consumer) reopen(old jetstream.MessagesContext, err error) bool {
	old.Stop()
	if c.isStopping() {
		return false
	}
	if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) {
		c.mu.Lock()
		c.err = fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
		c.mu.Unlock()
		c.log.Error("consumer stopped: NATS connection closed")
		return false
	}
	c.log.Warn("consumer interrupted, reopening", "err", err)
	for {
		t := time.NewTimer(reopenDelay)
		select {
		case <-c.stopCh:
			t.Stop()
			return false
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
		it, err := c.open(ctx)
		cancel()
		if err != nil {
			c.log.Warn("reopen consumer", "err", err)
			continue
		}
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			it.Stop()
			return false
		}
		c.it = it
		c.mu.Unlock()
		return true
	}
}

func (c *Consumer) process(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery; nothing to settle it with.
		c.log.Error("message without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	d := Delivery{
		Consumer:   c.cfg.Durable,
		Stream:     md.Stream,
		Subject:    msg.Subject(),
		Sequence:   md.Sequence.Stream,
		Attempt:    int(md.NumDelivered),
		MaxDeliver: c.cfg.MaxDeliver,
	}
	e, err := events.FromMsg(msg.Data())
	if err != nil {
		c.deadLetter(msg, d, nil, Permanent(err))
		return
	}
	c.settle(msg, d, e, c.call(msg, d, e))
}

// call runs the handler in its span, keeps the message from redelivery while
// the handler runs, and turns a panic into an error.
func (c *Consumer) call(msg jetstream.Msg, d Delivery, e events.Event) (err error) {
	ctx := events.ExtractTrace(c.ctx, e)
	// The messaging conventions' "process" span: "{operation} {destination}".
	ctx, span := events.Tracer.Start(ctx, "process "+d.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingConsumerGroupName(d.Consumer),
			semconv.MessagingDestinationName(d.Subject),
			semconv.MessagingMessageID(e.ID()),
			attribute.Int("slipway.delivery.attempt", d.Attempt),
			attribute.String("cloudevents.event_type", e.Type()),
		))
	defer span.End()
	ctx = context.WithValue(ctx, deliveryKey{}, d)

	hb := make(chan struct{})
	var hbDone sync.WaitGroup
	hbDone.Go(func() { c.heartbeat(msg, hb) })
	defer func() {
		close(hb)
		// The heartbeat must be over before the message is settled: an
		// InProgress after the ack would be rejected.
		hbDone.Wait()
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
			c.log.Error("event handler panicked", "event_id", e.ID(), "subject", d.Subject, "panic", r, "stack", string(debug.Stack()))
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "handler failed")
		}
	}()
	return c.h(ctx, e)
}

func (c *Consumer) heartbeat(msg jetstream.Msg, done <-chan struct{}) {
	t := time.NewTicker(max(c.cfg.AckWait/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if err := msg.InProgress(); err != nil {
				c.log.Warn("extend ack wait", "subject", msg.Subject(), "err", err)
			}
		}
	}
}

func (c *Consumer) settle(msg jetstream.Msg, d Delivery, e events.Event, err error) {
	log := c.log.With("event_id", e.ID(), "type", e.Type(), "subject", d.Subject, "delivery", d.Attempt)
	switch {
	case err == nil:
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), opTimeout)
		defer cancel()
		if aerr := msg.DoubleAck(ctx); aerr != nil {
			log.Warn("ack not confirmed; the event may be redelivered", "err", aerr)
			return
		}
		log.Debug("event handled")
	case c.ctx.Err() != nil:
		// A hard stop interrupted the handler: not the event's fault, and
		// another replica may take it now.
		c.handBack(msg)
	case IsPermanent(err) || d.Last():
		c.deadLetter(msg, d, &e, err)
	default:
		delay := c.retryDelay(d.Attempt, err)
		log.Warn("event handler failed; will retry", "max_deliver", d.MaxDeliver, "retry_in", delay, "err", err)
		if nerr := msg.NakWithDelay(delay); nerr != nil {
			log.Warn("nak event; it is redelivered after ack wait", "err", nerr)
		}
	}
}

func (c *Consumer) retryDelay(attempt int, err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		if ra.delay > 0 {
			return ra.delay
		}
		// "Retry after 0" is "now": the shortest step, not a longer one.
		return c.cfg.BackOff[0]
	}
	i := min(max(attempt-1, 0), len(c.cfg.BackOff)-1)
	return c.cfg.BackOff[i]
}

// deadLetter stores a copy of msg on the dead-letter stream, announces it
// with an event.deadlettered event, and then terminates msg. e is the event,
// nil when the body is not one.
func (c *Consumer) deadLetter(msg jetstream.Msg, d Delivery, e *events.Event, cause error) {
	log := c.log.With("subject", d.Subject, "sequence", d.Sequence, "delivery", d.Attempt)
	if e != nil {
		log = log.With("event_id", e.ID())
	}
	dl := nats.NewMsg(DeadLetterSubject(c.cfg.Durable, d.Subject))
	dl.Data = msg.Data()
	for k, vs := range msg.Headers() {
		// Nats-Expected-Stream and the like would make the server reject
		// or reinterpret the copy.
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		dl.Header[k] = append([]string(nil), vs...)
	}
	now := time.Now().UTC()
	dl.Header.Set(HeaderDLQConsumer, c.cfg.Durable)
	dl.Header.Set(HeaderDLQError, headerValue(cause.Error(), maxErrorHeader))
	dl.Header.Set(HeaderDLQStream, d.Stream)
	dl.Header.Set(HeaderDLQSequence, strconv.FormatUint(d.Sequence, 10))
	dl.Header.Set(HeaderDLQDeliveries, strconv.Itoa(d.Attempt))
	dl.Header.Set(HeaderDLQSubject, d.Subject)
	dl.Header.Set(HeaderDLQTime, now.Format(time.RFC3339Nano))

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), opTimeout)
	defer cancel()
	ack, err := c.js.PublishMsg(ctx, dl,
		jetstream.WithMsgID(deadLetterKey(c.cfg.Durable, d.Stream, d.Sequence)),
		jetstream.WithExpectStream(DeadLetterStreamName(c.cfg.Stream)),
	)
	if err != nil {
		c.retryDeadLetter(msg, d, log.With("err", err, "cause", cause), "dead-letter publish failed; will retry")
		return
	}
	// A duplicate acks with the sequence of the copy stored before.
	letter := DeadLetter{
		Seq: ack.Sequence, Consumer: c.cfg.Durable, Error: dl.Header.Get(HeaderDLQError),
		Subject: d.Subject, Stream: d.Stream, Sequence: d.Sequence, Deliveries: d.Attempt, Time: now,
		Data: dl.Data, Header: dl.Header,
	}
	if e != nil {
		letter.EventID, letter.EventType = e.ID(), e.Type()
	}
	if !ack.Duplicate && c.cfg.OnDeadLetter != nil {
		c.cfg.OnDeadLetter(letter)
	}
	if err := c.announce(ctx, msg, e, letter); err != nil {
		// The copy is stored and deduplicates; the redelivery announces.
		c.retryDeadLetter(msg, d, log.With("err", err, "cause", cause), "dead-letter announcement failed; will retry")
		return
	}
	if err := msg.TermWithReason("dead-lettered"); err != nil {
		// The copy is stored; a redelivery dead-letters again, deduplicated.
		log.Warn("terminate dead-lettered event", "err", err)
	}
	log.Error("event dead-lettered", "dead_letter_subject", dl.Subject, "dead_letter_seq", ack.Sequence, "err", cause)
}

// deadLetterKey identifies a dead letter: the Nats-Msg-Id of the copy and
// the seed of its announcement's id. A redelivery (the Term got lost) must
// not dead-letter twice, but the same event redriven and failing again is a
// new message and must land again: the stream position, not the event id,
// identifies it.
func deadLetterKey(consumer, stream string, seq uint64) string {
	return consumer + ":" + stream + ":" + strconv.FormatUint(seq, 10)
}

// retryDeadLetter hands msg back for a later attempt at dead-lettering it,
// so that a failure on the way to the dead-letter stream never drops it.
func (c *Consumer) retryDeadLetter(msg jetstream.Msg, d Delivery, log *slog.Logger, why string) {
	delay := c.retryDelay(d.Attempt, nil)
	log.Error(why, "retry_in", delay)
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		log.Warn("nak event; it is redelivered after ack wait", "err", nerr)
	}
}

// headerValue makes s safe as a NATS header value (no line breaks or other
// control characters) and cuts it to at most n bytes on a rune boundary.
func headerValue(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
