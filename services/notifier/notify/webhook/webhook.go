// Package webhook is the notifier's generic integration: it POSTs each event
// as a CloudEvent in the structured mode of the CloudEvents HTTP binding
// (Content-Type application/cloudevents+json, the body is the event exactly
// as it is stored on the stream), signed with
//
//	X-Slipway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// when the receiver has a secret. A receiver checks the signature with
// Verify (or its equivalent in another language, see docs/notifications.md),
// which also rejects old timestamps so that a captured request cannot be
// replayed later.
package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Kind is the integration's name in the configuration.
const Kind = "webhook"

// ContentType is the structured-mode CloudEvents media type sent.
const ContentType = events.ContentType + "; charset=utf-8"

// Receiver posts signed CloudEvents to one URL.
type Receiver struct {
	name   string
	url    string
	host   string // for errors and logs: the URL may carry a token
	secret []byte
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

var _ notify.Receiver = (*Receiver)(nil)

// New builds the receiver of cfg.Webhook.
func New(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error) {
	w := cfg.Webhook
	if w == nil {
		return nil, fmt.Errorf("receiver %s: not a webhook receiver", name)
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("receiver %s: webhook.url must be an http(s) URL", name)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Receiver{name: name, url: w.URL, host: u.Scheme + "://" + u.Host, client: client, log: log, now: time.Now}
	if w.Secret != "" {
		r.secret = []byte(w.Secret)
	} else {
		log.Warn("webhook receiver without a secret: its requests are not signed", "receiver", name)
	}
	return r, nil
}

// Name is the receiver's name in the configuration.
func (r *Receiver) Name() string { return r.name }

// Kind is "webhook".
func (r *Receiver) Kind() string { return Kind }

// StatusError is a response other than 2xx.
type StatusError struct {
	// Code is the HTTP status.
	Code int
	// RetryAfter is the delay the receiver asked for with a retryable
	// answer (capped at an hour), 0 if none or "now".
	RetryAfter time.Duration
	// Body is the start of the response body, on one line.
	Body string
	host string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("POST %s: %d %s", e.host, e.Code, http.StatusText(e.Code))
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Notify posts the event. Answers are classified by httpretry's rule: 2xx
// is success; 408, 425, 429 and 5xx (but 501, 505) are retried, after the
// receiver's Retry-After when it sent one (bus.RetryAfter); time-outs and
// connection errors are retried with back-off; any other status is final
// (bus.Permanent).
func (r *Receiver) Notify(ctx context.Context, n notify.Notification) error {
	body, err := n.Event.MarshalJSON()
	if err != nil {
		return bus.Permanent(fmt.Errorf("encode event %s: %w", n.Event.ID(), err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return bus.Permanent(fmt.Errorf("webhook: %w", config.RedactError(err)))
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "slipway-notifier")
	if r.secret != nil {
		req.Header.Set(SignatureHeader, Sign(r.secret, r.now(), body))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// *url.Error repeats the whole URL, which may hold a token.
		return fmt.Errorf("webhook: %w", config.RedactError(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	d := httpretry.Classify(resp.StatusCode, resp.Header, r.now())
	if d.Outcome == httpretry.Success {
		return nil
	}
	se := &StatusError{Code: resp.StatusCode, Body: oneLine(snippet, 200), host: r.host, RetryAfter: d.After}
	return notify.Refused(se, d)
}

func oneLine(b []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
