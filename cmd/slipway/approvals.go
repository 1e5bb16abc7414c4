package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/ingest"
)

// tokenEnv holds the approver's token when --token is not given.
const tokenEnv = "SLIPWAY_TOKEN"

// apiTimeout bounds one call to ingest's approval API.
const apiTimeout = 30 * time.Second

// decidedLayout is how the commands show when an approval was decided or
// expired: local time, with the zone.
const decidedLayout = "2006-01-02 15:04:05 MST"

// apiFlags are the flags of the commands that talk to ingest's approval API:
// decisions go through ingest, so they are authenticated and recorded under
// the approver's name.
type apiFlags struct {
	config string
	url    string
	token  string
}

func (f *apiFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.config, "config", "", "configuration file (for ingest's address, ingest.listen)")
	cmd.PersistentFlags().StringVar(&f.url, "url", "", "ingest's base URL (default: from --config, else http://127.0.0.1:8080)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "your approver token (default: $"+tokenEnv+")")
}

// client resolves the flags into an API client.
func (f *apiFlags) client() (*approvalsClient, error) {
	base := f.url
	if base == "" {
		listen := ingest.DefaultListen
		if f.config != "" {
			cfg, err := config.Load(f.config)
			if err != nil {
				return nil, err
			}
			if cfg.Ingest.Listen != "" {
				listen = cfg.Ingest.Listen
			}
		}
		var err error
		if base, err = ingestURL(listen); err != nil {
			return nil, err
		}
	}
	token := f.token
	if token == "" {
		token = os.Getenv(tokenEnv)
	}
	if token == "" {
		return nil, fmt.Errorf("no approver token: pass --token or set %s", tokenEnv)
	}
	return &approvalsClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: apiTimeout}}, nil
}

// ingestURL is the URL a client on this machine reaches a listener at:
// an empty or unspecified host (":8080", "0.0.0.0:8080", "[::]:8080")
// means 127.0.0.1.
func ingestURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("ingest.listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func approvalsCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List and decide the approvals that gate promotions (through ingest's API, with your approver token)",
	}
	f.add(cmd)

	var asJSON bool
	var state string
	list := &cobra.Command{
		Use:   "list [--state pending|granted|rejected|expired] [--json]",
		Short: "List approvals, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" {
				if _, err := approval.ParseState(state); err != nil {
					return usageErrorf(cmd, "--state: %w", err)
				}
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			raw, err := c.list(cmd.Context(), state)
			if err != nil {
				return err
			}
			if asJSON {
				var buf bytes.Buffer
				if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
					return fmt.Errorf("ingest answered with invalid JSON: %w", err)
				}
				buf.WriteByte('\n')
				_, err := buf.WriteTo(cmd.OutOrStdout())
				return err
			}
			var records []approval.Record
			if err := json.Unmarshal(raw, &records); err != nil {
				return fmt.Errorf("ingest answered with something other than a list of approvals: %w", err)
			}
			return printApprovals(cmd.OutOrStdout(), records)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the records as JSON")
	list.Flags().StringVar(&state, "state", "", "only approvals in this state (pending, granted, rejected, expired)")
	cmd.AddCommand(list, decisionCmd(&f, true), decisionCmd(&f, false))
	return cmd
}

// decisionCmd is `approvals approve ID` (grant) or `approvals reject ID`.
func decisionCmd(f *apiFlags, grant bool) *cobra.Command {
	verb, short := "reject", "Reject a pending promotion"
	if grant {
		verb, short = "approve", "Approve a pending promotion"
	}
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " ID [--reason TEXT]",
		Short: short,
		Args:  oneArg("approval ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.decide(cmd.Context(), args[0], verb, reason)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s by %s: %s %s\n", r.State, r.ID, r.DecidedBy, r.Promotion, imageColumn(r.From, r.To))
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded and announced with the decision)")
	return cmd
}

// approvalsClient calls ingest's approval API.
type approvalsClient struct {
	base, token string
	http        *http.Client
}

func (c *approvalsClient) list(ctx context.Context, state string) ([]byte, error) {
	u := c.base + "/approvals"
	if state != "" {
		u += "?state=" + url.QueryEscape(state)
	}
	return c.do(ctx, http.MethodGet, u, nil)
}

func (c *approvalsClient) decide(ctx context.Context, id, verb, reason string) (approval.Record, error) {
	body, err := json.Marshal(ingest.DecisionBody{Reason: reason})
	if err != nil {
		return approval.Record{}, err
	}
	raw, err := c.do(ctx, http.MethodPost, c.base+"/approvals/"+url.PathEscape(id)+"/"+verb, body)
	var conflict *apiError
	if errors.As(err, &conflict) && conflict.Code == http.StatusConflict {
		if msg := conflictMessage(id, conflict.Body); msg != "" {
			return approval.Record{}, errors.New(msg)
		}
	}
	if err != nil {
		return approval.Record{}, fmt.Errorf("%s %s: %w", verb, id, err)
	}
	var r approval.Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return approval.Record{}, fmt.Errorf("%s %s: ingest answered with something other than the approval: %w", verb, id, err)
	}
	return r, nil
}

// do sends one request with the bearer token and returns the body of a 200,
// or an error with ingest's message and the status.
func (c *approvalsClient) do(ctx context.Context, method, u string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return raw, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		msg += " (check --token or $" + tokenEnv + ")"
	}
	return nil, &apiError{Code: resp.StatusCode, Msg: msg, Body: raw}
}

// apiError is a non-200 answer of the approval API.
type apiError struct {
	Code int
	Msg  string
	Body []byte
}

// conflictMessage is the plain sentence for a 409 of a decision: the
// approval was decided (perhaps by the caller, with the same decision) or
// expired before, and nothing changed. It is "" for a body that does not
// say which (an older ingest), leaving ingest's own message.
func conflictMessage(id string, body []byte) string {
	var c ingest.DecisionConflict
	if json.Unmarshal(body, &c) != nil {
		return ""
	}
	switch c.State {
	case approval.Granted, approval.Rejected:
		if c.DecidedBy == "" || c.DecidedAt.IsZero() {
			return ""
		}
		verb := "approved"
		if c.State == approval.Rejected {
			verb = "rejected"
		}
		msg := fmt.Sprintf("approval %s was already %s by %s at %s", id, verb, c.DecidedBy, c.DecidedAt.Local().Format(decidedLayout))
		if c.Reason != "" {
			msg += fmt.Sprintf(" (reason %q)", c.Reason)
		}
		return msg + "; nothing changed"
	case approval.Expired:
		if c.ExpiresAt.IsZero() {
			return fmt.Sprintf("approval %s has expired; nothing changed", id)
		}
		return fmt.Sprintf("approval %s expired at %s; nothing changed", id, c.ExpiresAt.Local().Format(decidedLayout))
	}
	return ""
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Code) }

// printApprovals renders the list as a table.
func printApprovals(out io.Writer, records []approval.Record) error {
	if len(records) == 0 {
		_, err := fmt.Fprintln(out, "no approvals")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tPROMOTION\tIMAGE\tSTATE\tEXPIRES/DECIDED BY")
	for _, r := range records {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Promotion, imageColumn(r.From, r.To), r.State, whenOrWho(r))
	}
	return w.Flush()
}

// imageColumn is "from → to", each as registry/repository:tag (the digest
// is the same on both sides and too long for a table).
func imageColumn(from, to events.ImageRef) string {
	return events.ImageReference(from.Registry, from.Repository, from.Tag, "") + " → " +
		events.ImageReference(to.Registry, to.Repository, to.Tag, "")
}

// whenOrWho is when a pending approval expires, or who decided it.
func whenOrWho(r approval.Record) string {
	const layout = "2006-01-02 15:04"
	switch r.State {
	case approval.Granted, approval.Rejected:
		return "by " + r.DecidedBy
	case approval.Expired:
		return "expired " + r.ExpiresAt.Local().Format(layout)
	}
	if r.ExpiresAt.IsZero() {
		return "never expires"
	}
	return "expires " + r.ExpiresAt.Local().Format(layout)
}
