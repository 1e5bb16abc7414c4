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
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/natsconn"
)

// natsFlags are the flags of every command that talks to NATS.
type natsFlags struct {
	config string
	url    string
}

func (f *natsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.config, "config", "", "configuration file (for the NATS address and credentials)")
	cmd.Flags().StringVar(&f.url, "nats", "", "NATS URL (default: from --config, else nats://127.0.0.1:4222)")
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
	cmd := &cobra.Command{Use: "events", Short: "Watch the event stream"}
	var nf natsFlags
	var subject string
	var asJSON, all bool
	tail := &cobra.Command{
		Use:   "tail [--nats URL] [--subject slipway.>] [--json]",
		Short: "Print events as they arrive, one line each (or as JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, _, err := nf.dial("slipway events tail")
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return tailEvents(ctx, conn.JS, subject, all, asJSON, cmd.OutOrStdout())
		},
	}
	nf.add(tail)
	tail.Flags().StringVar(&subject, "subject", "slipway.>", "subject filter")
	tail.Flags().BoolVar(&asJSON, "json", false, "print each event as one line of JSON (the CloudEvent; a message that is none as {\"notCloudEvent\":true,...})")
	tail.Flags().BoolVar(&all, "all", false, "start from the first event in the stream, not from now")
	cmd.AddCommand(tail)
	return cmd
}

// tailEvents follows the stream that holds subject with an ordered,
// ephemeral consumer: it leaves nothing behind on the server.
func tailEvents(ctx context.Context, js jetstream.JetStream, subject string, all, asJSON bool, out io.Writer) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	stream, err := js.StreamNameBySubject(lctx, subject)
	cancel()
	if err != nil {
		return fmt.Errorf("no stream holds %q: %w", subject, err)
	}
	policy := jetstream.DeliverNewPolicy
	if all {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  policy,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if asJSON {
			fmt.Fprintf(out, "%s\n", jsonLine(m.Subject(), m.Data()))
			return
		}
		e, err := events.FromMsg(m.Data())
		if err != nil {
			fmt.Fprintf(out, "%s  (not a CloudEvent: %v)\n", m.Subject(), err)
			return
		}
		fmt.Fprintln(out, formatLine(e))
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	<-ctx.Done()
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

// formatLine renders an event as one readable line: time, type, environment,
// what it is about, and the details that matter for its type.
func formatLine(e events.Event) string {
	t := events.Type(e.Type())
	var detail string
	switch t {
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
		}
	case events.TypeNotificationFailed:
		if d, err := events.DataAs[events.NotificationFailed](e); err == nil {
			detail = fmt.Sprintf("%s after %d attempts: %s", d.Receiver, d.Attempts, d.Error)
		}
	}
	line := fmt.Sprintf("%s  %-22s %-5s %s", e.Time().Local().Format("15:04:05.000"), t.Short(), events.EnvironmentOf(e), e.Subject())
	if detail != "" {
		line += "  " + detail
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
