package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/natsconn"
)

// natsFlags are the flags of every command that talks to NATS.
type natsFlags struct {
	config string
	url    string
}

// add defines the flags on fs: a command's Flags, or the PersistentFlags
// of a command whose subcommands all talk to NATS (slipway dlq), so that
// they may come before or after the subcommand.
func (f *natsFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "configuration file (for the NATS address and credentials)")
	fs.StringVar(&f.url, "nats", "", "NATS URL (default: from --config, else nats://127.0.0.1:4222)")
}

func (f *natsFlags) dial(name string) (*natsconn.Conn, *config.Config, error) {
	cfg := &config.Config{}
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return nil, nil, err
		}
	} else {
		cfg.NATS.Embedded.Listen = config.DefaultEmbeddedListen
		cfg.NATS.Stream.Name = "SLIPWAY"
	}
	url := f.url
	if url == "" {
		url = natsconn.ClientURL(cfg.NATS)
	}
	conn, err := natsconn.Dial(cfg.NATS, url, name)
	return conn, cfg, err
}

func eventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Watch and list the event stream"}
	cmd.AddCommand(eventsTailCmd(), eventsListCmd())
	return cmd
}

// eventsFlags are the flags `events tail` and `events list` share.
type eventsFlags struct {
	nats    natsFlags
	subject string
	json    bool
	wide    bool
	since   string
}

func (f *eventsFlags) add(cmd *cobra.Command, since, sinceUsage string) {
	f.nats.add(cmd.Flags())
	cmd.Flags().StringVar(&f.subject, "subject", "slipway.>", "subject filter")
	cmd.Flags().BoolVar(&f.json, "json", false, "print each event as one line of JSON (the CloudEvent; a message that is none as {\"notCloudEvent\":true,...})")
	cmd.Flags().BoolVar(&f.wide, "wide", false, "print digests in full (default: their first 12 hex digits)")
	cmd.Flags().StringVar(&f.since, "since", since, sinceUsage)
}

// printer is the output the flags ask for, on the command's stdout, with
// what the command says about its connection on stderr.
func (f *eventsFlags) printer(cmd *cobra.Command) *eventPrinter {
	out := cmd.OutOrStdout()
	return &eventPrinter{
		out: out, status: cmd.ErrOrStderr(), prefix: cmd.CommandPath(),
		json: f.json, wide: f.wide, color: !f.json && colorWanted(isTerminal(out), os.Getenv),
		now: time.Now,
	}
}

func eventsTailCmd() *cobra.Command {
	var f eventsFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "tail [--nats URL] [--subject slipway.>] [--json]",
		Short: "Print events as they arrive, one line each (or as JSON), until interrupted",
		Long: `Print events as they arrive, one line each (or as JSON), until interrupted.

It says on stderr which server and stream it follows, and when the connection
is lost and back (then it goes on after the last event it printed). An event
not from today shows its date. --since or --all start in the past; to list the
events of a time span and stop, use "slipway events list".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := startAt{all: all}
			if f.since != "" {
				if all {
					return usageErrorf(cmd, "give either --since or --all")
				}
				t, err := parseWhen(f.since, time.Now())
				if err != nil {
					return usageErrorf(cmd, "--since: %w", err)
				}
				start.since = t
			}
			conn, _, err := f.nats.dial(cmd.CommandPath())
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return tailEvents(ctx, conn.NC, conn.JS, f.subject, start, f.printer(cmd))
		},
	}
	f.add(cmd, "", "start with the events stored since then: a duration back from now (1h), a time (RFC 3339) or a date")
	cmd.Flags().BoolVar(&all, "all", false, "start from the first event in the stream, not from now")
	return cmd
}

func eventsListCmd() *cobra.Command {
	var f eventsFlags
	var until string
	cmd := &cobra.Command{
		Use:   "list --since 24h [--until T] [--subject S] [--json]",
		Short: "Print the events of a time span, oldest first, and stop",
		Long: `Print the events stored in a time span, oldest first, one line each (or as
JSON), and stop. --since and --until take a duration back from now (24h, 90m),
a time (RFC 3339: 2025-06-01T12:00:00Z) or a date (2025-06-01, local midnight).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			since, err := parseWhen(f.since, now)
			if err != nil {
				return usageErrorf(cmd, "--since: %w", err)
			}
			end := now
			if until != "" {
				if end, err = parseWhen(until, now); err != nil {
					return usageErrorf(cmd, "--until: %w", err)
				}
			}
			if !end.After(since) {
				return usageErrorf(cmd, "--until (%s) is not after --since (%s)", end.Format(time.RFC3339), since.Format(time.RFC3339))
			}
			conn, _, err := f.nats.dial(cmd.CommandPath())
			if err != nil {
				return err
			}
			defer conn.Close()
			return listEvents(cmd.Context(), conn.JS, f.subject, since, end, f.printer(cmd))
		},
	}
	f.add(cmd, "24h", "list the events stored since then")
	cmd.Flags().StringVar(&until, "until", "", "list the events stored until then (default: now)")
	return cmd
}

// parseWhen reads --since and --until: a duration back from now, a time
// (RFC 3339) or a date (local midnight).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration back from now is positive", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Time{}, fmt.Errorf("%q: durations use h, m, s: %s is %dh", s, s, 24*n)
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 90m), a time (2006-01-02T15:04:05Z) nor a date (2006-01-02)", s)
}

// startAt is where tail starts: now, at the first event, or at a time.
type startAt struct {
	all   bool
	since time.Time
}

func (s startAt) String() string {
	switch {
	case s.all:
		return "from the first event"
	case !s.since.IsZero():
		return "from " + s.since.Local().Format(time.DateTime)
	}
	return "new events"
}

// streamOf finds the stream that stores subject.
func streamOf(ctx context.Context, js jetstream.JetStream, subject string) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := js.StreamNameBySubject(lctx, subject)
	if err != nil {
		return "", fmt.Errorf("no stream holds %q: %w", subject, err)
	}
	return stream, nil
}

// tailEvents follows the stream that holds subject with an ordered,
// ephemeral consumer: it leaves nothing behind on the server, and after a
// lost connection it goes on after the last message it delivered.
func tailEvents(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, subject string, start startAt, p *eventPrinter) error {
	stream, err := streamOf(ctx, js, subject)
	if err != nil {
		return err
	}
	server := config.RedactURL(nc.ConnectedUrl())
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		if ctx.Err() != nil {
			return // our own Close
		}
		why := ""
		if err != nil {
			why = " (" + config.RedactError(err).Error() + ")"
		}
		p.statusf("%s lost the connection to %s%s; reconnecting", p.now().Format(time.TimeOnly), server, why)
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		server = config.RedactURL(nc.ConnectedUrl())
		p.statusf("%s reconnected to %s; going on after the last event shown", p.now().Format(time.TimeOnly), server)
	})
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	switch {
	case start.all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case !start.since.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &start.since
	default:
		// "New" as a sequence, not as DeliverNewPolicy: the ordered
		// consumer is created again after a lost connection, and before it
		// has delivered anything it would start at what is new then,
		// skipping what came while it was away.
		info, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = info.CachedInfo().State.LastSeq + 1
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { p.message(m.Subject(), m.Data()) })
	if err != nil {
		return err
	}
	defer cc.Stop()
	p.statusf("connected to %s, stream %s, subject %s: %s (Ctrl-C to stop)", server, stream, subject, start)
	<-ctx.Done()
	return nil
}

// listEvents prints the messages on subject stored from since to until,
// and returns once it has printed those stored when it started.
func listEvents(ctx context.Context, js jetstream.JetStream, subject string, since, until time.Time, p *eventPrinter) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	stream, err := streamOf(ctx, js, subject)
	if err != nil {
		return err
	}
	printed := 0
	err = scanStream(ctx, js, stream, []string{subject}, since, until, func(m jetstream.Msg) {
		p.message(m.Subject(), m.Data())
		printed++
	})
	if err != nil {
		return err
	}
	if printed == 0 && !p.json {
		p.statusf("no events on %s (stream %s) from %s to %s", subject, stream, since.Local().Format(time.DateTime), until.Local().Format(time.DateTime))
	}
	return nil
}

// scanStream calls fn with each message of stream on subjects stored from
// since (the first message when since is zero) to until, oldest first, and
// returns once it has read those stored when it started: it never waits
// for new ones. Its consumer is ephemeral and acknowledges nothing: the
// server forgets it.
func scanStream(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, since, until time.Time, fn func(jetstream.Msg)) error {
	cfg := jetstream.ConsumerConfig{
		FilterSubjects:    subjects,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, stream, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return err
		}
		n := uint64(0)
		for m := range batch.Messages() {
			n++
			if meta, err := m.Metadata(); err == nil && meta.Timestamp.After(until) {
				pending = 0
				break
			}
			fn(m)
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("stream %s stopped delivering with %d events to go", stream, pending)
		}
		pending -= min(n, pending)
	}
	return nil
}

// notCloudEvent is what `events tail --json` prints for a message whose
// body is no CloudEvent, so that every line stays one JSON value.
type notCloudEvent struct {
	NotCloudEvent bool   `json:"notCloudEvent"`
	Subject       string `json:"subject"`
	Error         string `json:"error"`
	// Data is the body as text; DataBase64 replaces it when the body is not
	// UTF-8 (a JSON string would mangle it).
	Data       *string `json:"data,omitempty"`
	DataBase64 string  `json:"dataBase64,omitempty"`
}

// jsonLine renders a message as one line of JSON: a CloudEvent as it is
// (compacted: a body written over several lines stays one line), anything
// else as a notCloudEvent.
func jsonLine(subject string, data []byte) []byte {
	_, err := events.FromMsg(data)
	if err == nil {
		var b bytes.Buffer
		if err = json.Compact(&b, data); err == nil {
			return b.Bytes()
		}
	}
	n := notCloudEvent{NotCloudEvent: true, Subject: subject, Error: err.Error()}
	if utf8.Valid(data) {
		s := string(data)
		n.Data = &s
	} else {
		n.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	line, _ := json.Marshal(n) // strings only: cannot fail
	return line
}

// formatLine renders an event as one readable line: time, type,
// environment, what it is about, and the details that matter for its type.
func formatLine(e events.Event) string {
	typ, env, about := eventColumns(e)
	return fmt.Sprintf("%s  %-22s %-5s %s", e.Time().Local().Format("15:04:05.000"), typ, env, about)
}

// eventColumns are the columns of an event's line after its time: the
// short type, the environment, and what it is about with its details.
func eventColumns(e events.Event) (typ, env, about string) {
	about = e.Subject()
	if detail := eventDetail(e); detail != "" {
		about += "  " + detail
	}
	return events.Type(e.Type()).Short(), events.EnvironmentOf(e), about
}

// eventDetail is what matters about an event of its type.
func eventDetail(e events.Event) string {
	var detail string
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		if d, err := events.DataAs[events.ImagePushed](e); err == nil {
			detail = fmt.Sprintf("by %s via %s", orDash(d.Actor), d.Source)
		}
	case events.TypeImagePromoted:
		if d, err := events.DataAs[events.ImagePromoted](e); err == nil {
			detail = fmt.Sprintf("from %s (%d blobs copied, %d skipped, %d ms)", d.From, d.BlobsCopied, d.BlobsSkipped, d.DurationMs)
		}
	case events.TypePromotionFailed:
		if d, err := events.DataAs[events.PromotionFailed](e); err == nil {
			detail = fmt.Sprintf("%s (attempt %d, retryable %t)", d.Error, d.Attempt, d.Retryable)
		}
	case events.TypeApprovalRequested:
		if d, err := events.DataAs[events.ApprovalRequested](e); err == nil {
			detail = fmt.Sprintf("approval %s for %s, expires %s", d.ApprovalID, d.Promotion, d.ExpiresAt.Format(time.RFC3339))
		}
	case events.TypeApprovalGranted, events.TypeApprovalRejected:
		if d, err := events.DataAs[events.ApprovalDecision](e); err == nil {
			detail = fmt.Sprintf("approval %s by %s %s", d.ApprovalID, d.By, d.Reason)
		}
	case events.TypeDeploymentStarted, events.TypeDeploymentSucceeded, events.TypeDeploymentFailed:
		if d, err := events.DataAs[events.Deployment](e); err == nil {
			detail = "→ " + d.ToImage
			if d.DurationMs > 0 {
				detail += fmt.Sprintf(" (%d ms)", d.DurationMs)
			}
			if d.Reason != "" {
				detail += fmt.Sprintf(": %s (rolled back: %t)", d.Reason, d.RolledBack)
			}
		}
	case events.TypeDriftDetected:
		if d, err := events.DataAs[events.DriftDetected](e); err == nil {
			detail = fmt.Sprintf("expected %s, runs %s", d.ExpectedImage, d.ActualImage)
			if left := d.LeftManagement(); left != "" {
				detail = left
			}
		}
	case events.TypeDeploymentRefused:
		// The subject is the pushed image; what the line must add is where
		// it was refused and who pushed it.
		if d, err := events.DataAs[events.DeploymentRefused](e); err == nil {
			workloads := "workloads"
			if len(d.Workloads) == 1 {
				workloads = "workload"
			}
			detail = fmt.Sprintf("refused direct push by %s on %s (%d %s)", orDash(d.Actor), d.Cluster, len(d.Workloads), workloads)
		}
	case events.TypeComplianceViolated:
		if d, err := events.DataAs[events.ComplianceViolated](e); err == nil {
			detail = fmt.Sprintf("breaks %s (%s): %s", d.Rule, d.Kind, d.Detail)
		}
	case events.TypeActionRequested:
		if d, err := events.DataAs[events.ActionRequested](e); err == nil {
			detail = fmt.Sprintf("%s by %s via %s", d.Action, orDash(d.Actor), d.Via)
			if d.Action == events.ActionRedrive {
				detail += fmt.Sprintf(" of dead letter %d (event %s)", d.Target.Sequence, orDash(d.Target.EventID))
			}
			if d.Reason != "" {
				detail += ": " + d.Reason
			}
		}
	case events.TypeNotificationFailed:
		if d, err := events.DataAs[events.NotificationFailed](e); err == nil {
			detail = fmt.Sprintf("%s after %d attempts: %s", d.Receiver, d.Attempts, d.Error)
		}
	}
	return detail
}

// eventPrinter prints messages of the stream as `events tail` and `events
// list` show them, and what the command says about its connection.
type eventPrinter struct {
	mu     sync.Mutex // the consumer and the connection's handlers print concurrently
	out    io.Writer
	status io.Writer
	prefix string // of status lines: the command
	json   bool
	wide   bool // digests in full
	color  bool // ANSI colours
	now    func() time.Time
}

func (p *eventPrinter) message(subject string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		fmt.Fprintf(p.out, "%s\n", jsonLine(subject, data))
		return
	}
	e, err := events.FromMsg(data)
	if err != nil {
		fmt.Fprintf(p.out, "%s  (not a CloudEvent: %v)\n", subject, err)
		return
	}
	fmt.Fprintln(p.out, p.line(e))
}

// line is formatLine with the date of an event not from today, digests
// shortened unless wide, and colours.
func (p *eventPrinter) line(e events.Event) string {
	typ, env, about := eventColumns(e)
	if !p.wide {
		about = shortenDigests(about)
	}
	stamp := timeStamp(e.Time(), p.now())
	typ = fmt.Sprintf("%-22s", typ)
	if p.color {
		stamp = paint(faint, stamp)
		typ = paint(typeColor(events.Type(e.Type())), typ)
	}
	return fmt.Sprintf("%s  %s %-5s %s", stamp, typ, env, about)
}

func (p *eventPrinter) statusf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.status, p.prefix+": "+format+"\n", a...)
}

// timeStamp is t's local clock time, with the date when it is not of
// now's day.
func timeStamp(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05.000")
	}
	return t.Format("2006-01-02 15:04:05.000")
}

// longDigest matches a sha256 digest; shortened it keeps its first 12
// digits, enough to see that the same image moves from stage to stage.
var longDigest = regexp.MustCompile(`(sha256:[0-9a-f]{12})[0-9a-f]{52}`)

// shortenDigests shortens every sha256 digest in s to 12 hex digits.
func shortenDigests(s string) string { return longDigest.ReplaceAllString(s, "$1") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
