package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"

	"github.com/slipway-cd/slipway/pkg/platform/config"

	"github.com/slipway-cd/slipway/services/ingest/auth"
	"github.com/slipway-cd/slipway/services/ingest/formats"
)

// Counts is the body of a 202 answer.
type Counts struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Ignored    int `json:"ignored"`
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// reply is what one webhook request gets.
type reply struct {
	code int
	body any
}

// retryAfter is sent with 503: long enough for NATS to come back or a
// leader to be elected, short enough not to stall the registry's queue.
const retryAfter = 5 * time.Second

var (
	tracer = otel.Tracer("slipway/ingest")
	// W3C trace context, whatever the process-wide propagator: a registry
	// or a proxy in front of us may send traceparent.
	traceContext = propagation.TraceContext{}
)

// webhook serves POST /webhooks/{source}[/{token}]. It does the
// bookkeeping (span, metrics, log); receive decides the answer.
func (h *handler) webhook(c echo.Context) error {
	start := time.Now()
	src := h.sources[c.Param("source")]
	if src == nil || strings.Contains(c.Param("token"), "/") { // echo's last param takes the rest of the path
		h.metrics.request(nil, http.StatusNotFound, 0)
		return c.JSON(http.StatusNotFound, errorBody{"unknown source"})
	}

	tok, hasToken := urlToken(c)
	// url.path is rebuilt from what is known: a urlToken source's path
	// holds its secret.
	path := "/webhooks/" + src.name
	if hasToken {
		path += "/" + config.Redacted
	}
	ctx, span := serverSpan(c, path,
		attribute.String("slipway.source", src.name),
		attribute.String("slipway.format", src.format))
	defer span.End()

	var rep reply
	if wait, ok := src.admit(); ok {
		rep = h.receive(ctx, c, src, tok, hasToken)
	} else {
		// Refused before the body is read: a flood costs no parsing, and
		// the registry's retry comes when there is room.
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		rep = reply{http.StatusTooManyRequests, errorBody{"too many deliveries from this source, retry later"}}
	}

	answered(span, rep.code)
	h.metrics.request(src, rep.code, time.Since(start).Seconds())
	if rep.code == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
	}
	if counts, ok := rep.body.(Counts); ok {
		return c.Blob(rep.code, echo.MIMEApplicationJSON, counts.appendJSON(make([]byte, 0, 64)))
	}
	return c.JSON(rep.code, rep.body)
}

// appendJSON appends c as echo's c.JSON writes it (encoding/json, one line)
// without a reflecting encoder: it is every stored webhook's answer.
func (c Counts) appendJSON(b []byte) []byte {
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(c.Accepted), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(c.Duplicates), 10)
	b = append(b, `,"ignored":`...)
	b = strconv.AppendInt(b, int64(c.Ignored), 10)
	return append(b, "}\n"...)
}

// receive is the data path of one delivery: authenticate, read,
// parse, normalise, store, answer. Credentials outside the body are checked
// before the body is read, so a flood of unauthenticated deliveries costs
// neither reading nor parsing; an HMAC needs the (bounded) body first.
func (h *handler) receive(ctx context.Context, c echo.Context, src *source, token string, hasToken bool) reply {
	r := c.Request()
	req := auth.Request{Header: r.Header, Token: token, HasToken: hasToken}
	early := !src.auth.NeedsBody()
	if early {
		if rep, ok := h.authenticate(ctx, src, req); !ok {
			skipBody(c)
			return rep
		}
	}

	body, err := readBody(c, h.maxBody)
	if errors.Is(err, errTooLarge) {
		return reply{http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("body larger than %d bytes", h.maxBody)}}
	}
	if err != nil {
		return reply{http.StatusBadRequest, errorBody{"reading body: " + err.Error()}}
	}
	if !early {
		req.Body = body
		if rep, ok := h.authenticate(ctx, src, req); !ok {
			return rep
		}
	}

	res, err := src.parse(formats.Delivery{Header: r.Header, Body: body})
	if err != nil {
		// Parsers return only MalformedError, whose message names what is
		// wrong; any error is the sender's to fix.
		h.log.InfoContext(ctx, "malformed webhook", "source", src.name, "format", src.format, "error", err)
		return reply{http.StatusBadRequest, errorBody{malformedMessage(src.format, err)}}
	}
	res = formats.Normalize(res)
	h.metrics.event(src, outcomeIgnored, res.Ignored)
	pushes, unrouted := h.routePushes(ctx, src, res.Pushes)
	pushes, foreign, rep, refused := h.refuseForeign(ctx, src, pushes)
	if refused {
		return rep
	}

	counts, err := h.publishAll(ctx, src, pushes)
	counts.Ignored = res.Ignored + unrouted + foreign
	if err != nil {
		// Whatever was stored becomes a duplicate when the registry retries.
		h.log.WarnContext(ctx, "webhook not stored; the sender should retry", "source", src.name, "events", len(pushes), "error", err)
		return reply{http.StatusServiceUnavailable, errorBody{"events could not be stored, retry later"}}
	}
	h.log.DebugContext(ctx, "webhook stored", "source", src.name, "accepted", counts.Accepted, "duplicates", counts.Duplicates, "ignored", counts.Ignored)
	return reply{http.StatusAccepted, counts}
}

// authenticate answers 401 unless req is from the source's sender.
func (h *handler) authenticate(ctx context.Context, src *source, req auth.Request) (reply, bool) {
	err := src.auth.Authenticate(req)
	if err == nil {
		return reply{}, true
	}
	// The reason (which header, wrong value) is for the operator; the
	// sender learns nothing. It never holds secret material.
	src.rejected.Add(1)
	src.rejectLog.Do(func() {
		h.log.WarnContext(ctx, "webhook rejected", "source", src.name, "auth", src.auth.Mechanism(), "reason", err,
			"rejected_since_last_line", src.rejected.Swap(0))
	})
	return reply{http.StatusUnauthorized, errorBody{"unauthorized"}}, false
}

// admit takes a token of the source's rate limit; when there is none it
// says how long until there is.
func (s *source) admit() (time.Duration, bool) {
	if s.limit == nil {
		return 0, true
	}
	res := s.limit.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// urlToken returns the {token} segment, unescaped (a sender escapes what a
// path cannot hold), and whether the request used the token form at all.
func urlToken(c echo.Context) (string, bool) {
	if c.Path() != routeWithToken {
		return "", false
	}
	tok := c.Param("token")
	if u, err := url.PathUnescape(tok); err == nil {
		tok = u
	}
	return tok, true
}

// malformedMessage is the 400 answer: what is wrong, after the format's
// name (parsers mostly put it there themselves; never twice).
func malformedMessage(format string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, format+":") {
		return msg
	}
	return format + ": " + msg
}

var errTooLarge = errors.New("body too large")

// readBody reads at most max bytes (plus one, to notice more).
// Content-Length only lets us refuse before reading anything; the limit
// holds whatever the header says, or when there is none (chunked). The rest
// of a body that is too large is never read: see skipBody.
func readBody(c echo.Context, max int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > max {
		skipBody(c)
		return nil, errTooLarge
	}
	if r.ContentLength > 0 {
		// The usual delivery says its length: one buffer of that size,
		// rather than io.ReadAll's growing copies. net/http stops the body
		// at Content-Length, and a shorter one is an unexpected EOF.
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response().Writer, r.Body, max))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		skipBody(c)
		return nil, errTooLarge
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// skipBody closes an HTTP/1 connection after the answer when the
// request's body is left unread, rather than reading what we refused to
// read. HTTP/2 resets just the stream.
func skipBody(c echo.Context) {
	r := c.Request()
	if r.ProtoMajor != 1 || r.ContentLength == 0 {
		return
	}
	c.Response().Header().Set("Connection", "close")
	// Going past a MaxBytesReader's limit is how a handler tells net/http
	// that it refused a body; net/http then half-closes and waits a moment
	// before closing, so that a client still writing the body reads our
	// answer instead of a reset.
	_, _ = http.MaxBytesReader(c.Response().Writer, io.NopCloser(strings.NewReader("x")), 0).Read(make([]byte, 1))
	// net/http still reads up to 256 KiB of an unread body after the
	// handler, even on a connection it closes; a read deadline in the past
	// ends that at what it has buffered.
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now())
}
