// Package httpretry is Slipway's one rule for what an HTTP answer means to
// the client that got it: success, try again (when), or give up. Every
// integration (Slack, Teams, webhooks, CDEvents), every platform client
// (Marathon) and the registry copier classify answers with it, so that a
// status never means "retry" to one and "permanent" to another.
//
// The rule:
//
//   - 2xx: success.
//   - 408, 425, 429, 500, 502, 503, 504: retry. So is any other 5xx except
//     501 and 505 (proxies and CDNs answer 520–530 for an origin that is
//     briefly away; 507 is a full disk that may be freed).
//   - 501 Not Implemented, 505 HTTP Version Not Supported: permanent — the
//     server says it can never do this.
//   - every other 4xx: permanent — the request, the URL or the credentials
//     are wrong, and sending it again changes nothing.
//   - 1xx and 3xx reaching the caller (a redirect the client did not
//     follow), and anything outside 100–599: permanent — the endpoint is
//     not what the configuration says.
//
// A retryable answer's Retry-After (delta-seconds or an HTTP-date) is
// honoured, capped at MaxRetryAfter. "Retry-After: 0", or a date in the
// past, means "now": the next attempt comes after the caller's shortest
// back-off step, never at once and never on the caller's longer schedule.
// A Retry-After on a success or a permanent answer is ignored.
package httpretry

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait a server can ask for: longer pauses would
// hold a consumer's work back for longer than an operator would wait.
const MaxRetryAfter = time.Hour

// Outcome is what an answer means for the request.
type Outcome int

const (
	// Success: the request was done.
	Success Outcome = iota
	// Retry: the same request may succeed later.
	Retry
	// Permanent: the same request can never succeed.
	Permanent
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Retry:
		return "retry"
	default:
		return "permanent"
	}
}

// RetryStatuses are the named retryable statuses, for clients that take a
// list (go-containerregistry's remote.WithRetryStatusCodes). Classify also
// retries the other 5xx but 501 and 505.
var RetryStatuses = []int{
	http.StatusRequestTimeout,
	http.StatusTooEarly,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// Decision is the classification of one answer.
type Decision struct {
	Outcome Outcome
	// After is the server's Retry-After on a retryable answer, capped at
	// MaxRetryAfter; 0 with HasAfter means "now".
	After time.Duration
	// HasAfter reports whether the server sent a usable Retry-After.
	HasAfter bool
	// Unprocessed reports that the status says the server did not act on
	// the request (408, 425, 429, 503), so that even a request that is not
	// idempotent may be sent again. After a 500, 502 or 504 a write may
	// have been applied.
	Unprocessed bool
}

// Backoff is a caller's retry schedule: the wait before retry n (n ≥ 1).
type Backoff func(n int) time.Duration

// Wait is the pause before retry n: the server's Retry-After when it sent
// one, but not less than the first step of b ("now" is the shortest
// back-off, so that a server answering 0 is not hammered); otherwise b(n).
func (d Decision) Wait(b Backoff, n int) time.Duration {
	if d.HasAfter {
		return max(d.After, b(1))
	}
	return b(n)
}

// Classify classifies an answer with status and header h (whose
// Retry-After is read relative to now).
func Classify(status int, h http.Header, now time.Time) Decision {
	switch {
	case status >= 200 && status <= 299:
		return Decision{Outcome: Success}
	case !Retryable(status):
		return Decision{Outcome: Permanent}
	}
	d := Decision{Outcome: Retry}
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		d.Unprocessed = true
	}
	if h != nil {
		d.After, d.HasAfter = ParseRetryAfter(h.Get("Retry-After"), now)
	}
	return d
}

// Retryable reports whether an answer with status may succeed when the
// request is sent again (the rule above, without Retry-After).
func Retryable(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false
	default:
		return status >= 500 && status <= 599
	}
}

// ParseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3):
// delta-seconds or an HTTP-date. ok is false for an empty or malformed
// value. The wait is capped at MaxRetryAfter; "0" and dates not in the
// future are 0, i.e. "now".
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // only digits: too large to parse is "very long"
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
