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
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Kind is the integration's name in the configuration.
const Kind = "webhook"

// ContentType is the structured-mode CloudEvents media type sent.
const ContentType = events.ContentType + "; charset=utf-8"

// maxRetryAfter caps what a receiver can ask for: longer pauses hold back
// every later message of this receiver.
const maxRetryAfter = time.Hour

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
	// RetryAfter is the delay the receiver asked for (429, 503), 0 if none.
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

// Notify posts the event. 2xx is success; 429 and 503 with Retry-After ask
// for a retry then (bus.RetryAfter); 408, 429, other 5xx, time-outs and
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
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &StatusError{Code: resp.StatusCode, Body: oneLine(snippet, 200), host: r.host}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), r.now()); ok {
			se.RetryAfter = d
			return bus.RetryAfter(se, d)
		}
		return se
	case c == http.StatusRequestTimeout || c >= 500:
		return se
	default:
		return bus.Permanent(se)
	}
}

// retryAfter parses a Retry-After header: delta-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	// "Retry-After: 0" still means: not before a moment has passed.
	return min(max(d, 100*time.Millisecond), maxRetryAfter), true
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
