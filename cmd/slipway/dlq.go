package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
)

// natsTimeout bounds the work against NATS of a dlq command or of the
// announcement of an action.
const natsTimeout = 30 * time.Second

func dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and redrive dead letters (events a consumer gave up on)",
		Long: `Inspect and redrive the dead-letter stream (SLIPWAY_DLQ, or the configured
stream's name with _DLQ appended).

A dead letter is named by SEQ, its sequence number in the dead-letter stream, as
printed by "slipway dlq list".`,
	}
	// The NATS flags belong to dlq, as approvals' API flags to approvals:
	// they go before or after the subcommand.
	var nf natsFlags
	nf.add(cmd.PersistentFlags())
	cmd.AddCommand(dlqListCmd(&nf), dlqShowCmd(&nf), dlqRedriveCmd(&nf))
	return cmd
}

// streamRun dials NATS and runs f, bounded by natsTimeout, with the
// configured event stream's name (its dead letters are on
// bus.DeadLetterStreamName of it).
func streamRun(cmd *cobra.Command, nf *natsFlags, f func(ctx context.Context, js jetstream.JetStream, stream string) error) error {
	conn, cfg, err := nf.dial(cmd.CommandPath())
	if err != nil {
		return err
	}
	defer conn.Close()
	name := cfg.NATS.Stream.Name
	if name == "" {
		name = bus.DefaultStream
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), natsTimeout)
	defer cancel()
	return f(ctx, conn.JS, name)
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("SEQ must be a dead-letter sequence number (see slipway dlq list), not %q", s)
	}
	return n, nil
}

func dlqListCmd(nf *natsFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: fmt.Sprintf("List dead letters, oldest first (at most %d)", bus.MaxListDeadLetters),
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return streamRun(cmd, nf, func(ctx context.Context, js jetstream.JetStream, stream string) error {
				list, err := bus.ListDeadLetters(ctx, js, bus.DeadLetterStreamName(stream))
				if err != nil {
					return err
				}
				if asJSON {
					if list == nil {
						list = []bus.DeadLetter{}
					}
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(list)
				}
				return printDeadLetters(cmd.OutOrStdout(), list)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the dead letters as JSON (Data is base64)")
	return cmd
}

func printDeadLetters(out io.Writer, list []bus.DeadLetter) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(out, "no dead letters")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tCONSUMER\tSUBJECT\tEVENT\tERROR")
	for _, d := range list {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Time.Local().Format("2006-01-02 15:04:05"),
			orDash(d.Consumer), orDash(d.Subject), orDash(d.EventID), truncate(d.Error, 60))
	}
	return w.Flush()
}

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func dlqShowCmd(nf *natsFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show a dead letter: its headers, the error and the event",
		Args:  oneArg("SEQ (a dead letter's sequence number, see slipway dlq list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := parseSeq(args[0])
			if err != nil {
				return usageErrorf(cmd, "%w", err)
			}
			return streamRun(cmd, nf, func(ctx context.Context, js jetstream.JetStream, stream string) error {
				dlq := bus.DeadLetterStreamName(stream)
				d, err := bus.GetDeadLetter(ctx, js, dlq, seq)
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					return fmt.Errorf("no dead letter %d on %s", seq, dlq)
				}
				if err != nil {
					return err
				}
				return printDeadLetter(cmd.OutOrStdout(), d)
			})
		},
	}
	return cmd
}

func printDeadLetter(out io.Writer, d bus.DeadLetter) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Seq:\t%d\n", d.Seq)
	fmt.Fprintf(w, "Time:\t%s\n", d.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Consumer:\t%s\n", orDash(d.Consumer))
	fmt.Fprintf(w, "Subject:\t%s\n", orDash(d.Subject))
	fmt.Fprintf(w, "From:\t%s sequence %d\n", orDash(d.Stream), d.Sequence)
	fmt.Fprintf(w, "Deliveries:\t%d\n", d.Deliveries)
	fmt.Fprintf(w, "Event:\t%s %s\n", orDash(d.EventID), d.EventType)
	fmt.Fprintf(w, "Error:\t%s\n", orDash(d.Error))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nHeaders:")
	keys := make([]string, 0, len(d.Header))
	for k := range d.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range d.Header[k] {
			fmt.Fprintf(out, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(out, "\nBody:")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, d.Data, "", "  "); err == nil {
		_, err = fmt.Fprintln(out, pretty.String())
		return err
	}
	_, err := fmt.Fprintf(out, "%q\n", d.Data)
	return err
}

func dlqRedriveCmd(nf *natsFlags) *cobra.Command {
	var (
		all    bool
		reason string
	)
	cmd := &cobra.Command{
		Use:   "redrive SEQ... | --all [--reason R]",
		Short: "Re-publish dead letters to their original subject, with the same event id",
		Long: `Re-publish dead letters to their original subject, with their original body,
headers and event id (as Nats-Msg-Id), and delete them from the dead-letter stream.
Each redrive is first announced as an action (an action.requested event naming
you, the OS user, the dead letter's event and --reason).

Every consumer whose filter matches the subject receives the event again, not
only the one that gave up on it.

Because the id is the same, JetStream drops the copy as a duplicate as long as
the original is inside the stream's duplicate window (10 minutes by default),
and a dead letter younger than the dead-letter stream's window is not redriven
either (should the event fail again, its new dead letter would be dropped as a
duplicate). Such a dead letter is kept and reported with the time to retry.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usageErrorf(cmd, "give either SEQ... or --all")
			}
			var seqs []uint64
			for _, a := range args {
				seq, err := parseSeq(a)
				if err != nil {
					return usageErrorf(cmd, "%w", err)
				}
				seqs = append(seqs, seq)
			}
			who, err := actor()
			if err != nil {
				return err
			}
			return streamRun(cmd, nf, func(ctx context.Context, js jetstream.JetStream, stream string) error {
				if all {
					list, err := bus.ListDeadLetters(ctx, js, bus.DeadLetterStreamName(stream))
					if err != nil {
						return err
					}
					for _, d := range list {
						seqs = append(seqs, d.Seq)
					}
					if len(seqs) == 0 {
						fmt.Fprintln(cmd.OutOrStdout(), "no dead letters")
						return nil
					}
				}
				req := actions.Request{Action: events.ActionRedrive, Actor: who, Via: events.ViaCLI, Reason: reason}
				return redriveAll(ctx, js, stream, req, seqs, cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "redrive every dead letter")
	cmd.Flags().StringVar(&reason, "reason", "", "why, in your words (recorded with each redrive)")
	return cmd
}

// redriveAll redrives seqs one by one, each announced as req, printing each
// outcome, and fails if any failed or was kept as a duplicate.
func redriveAll(ctx context.Context, js jetstream.JetStream, stream string, req actions.Request, seqs []uint64, out io.Writer) error {
	var redriven, kept, failed int
	pub := bus.NewPublisher(js, stream)
	for _, seq := range seqs {
		req.ID, req.Target = actions.NewID(), events.ActionTarget{Sequence: seq}
		o, err := actions.Redrive(ctx, js, stream, pub, req, time.Now())
		d := o.DeadLetter
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(out, "%d: failed: %v\n", seq, err)
		case o.Result == actions.Kept:
			kept++
			msg := fmt.Sprintf("%d: kept: event %s is still inside the duplicate window", seq, d.EventID)
			if !o.NotBefore.IsZero() {
				msg += "; retry after " + o.NotBefore.Local().Format("15:04:05")
			}
			fmt.Fprintln(out, msg)
		default:
			redriven++
			fmt.Fprintf(out, "%d: redriven: event %s to %s\n", seq, d.EventID, d.Subject)
		}
	}
	fmt.Fprintf(out, "%d redriven, %d kept, %d failed\n", redriven, kept, failed)
	if kept+failed > 0 {
		return fmt.Errorf("%d of %d dead letters not redriven", kept+failed, len(seqs))
	}
	return nil
}
