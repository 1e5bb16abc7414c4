package marathon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
	"github.com/slipway-cd/slipway/pkg/platform/tracehttp"
)

const (
	defaultAttempts         = 5
	defaultRetryBase        = 200 * time.Millisecond
	maxRetryDelay           = 10 * time.Second
	defaultRequestTimeout   = 30 * time.Second
	defaultHeartbeatTimeout = 30 * time.Second // Marathon sends a heartbeat at least every 10s
	defaultReconnectBase    = 500 * time.Millisecond
	defaultReconnectMax     = 10 * time.Second
	// Large clusters with embedded deployments produce big app lists; the
	// limit only guards against a proxy streaming garbage forever.
	maxResponseBytes = 64 << 20
	userAgent        = "slipway-marathon-client"
)

// Client talks to the Marathon of one cluster. It is safe for concurrent use.
type Client struct {
	cluster string
	base    *url.URL
	hc      *http.Client
	log     *slog.Logger
	auth    authenticator

	attempts         int
	retryBase        time.Duration
	requestTimeout   time.Duration
	heartbeatTimeout time.Duration
	reconnectBase    time.Duration
	reconnectMax     time.Duration
}

// Option changes a Client's defaults.
type Option func(*Client)

// WithHTTPClient makes the client use hc. Its Timeout is ignored for the
// event stream, which is open for hours. When the cluster has a caFile, hc's
// transport must be nil or an *http.Transport: a copy of it gets the CA pool.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithLogger sets where the client logs retries, logins and reconnects.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) { c.log = l }
}

// WithRetry bounds each call to attempts tries, waiting base, 2×base, 4×base…
// (jittered, at most 10s) between them. attempts < 1 means 1.
func WithRetry(attempts int, base time.Duration) Option {
	return func(c *Client) {
		c.attempts = max(attempts, 1)
		c.retryBase = max(base, 0)
	}
}

// WithRequestTimeout bounds one attempt of a REST call (not the event
// stream), so a Marathon that accepts connections but never answers does not
// hang a caller whose context has no deadline. 0 disables it. Default 30s.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) { c.requestTimeout = max(d, 0) }
}

// WithHeartbeatTimeout sets how long the event stream may stay silent before
// it is considered dead and reopened. Marathon sends a heartbeat at least
// every 10s; the default is 30s.
func WithHeartbeatTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.heartbeatTimeout = d
		}
	}
}

// WithReconnectBackoff sets the event stream's reconnect delays: base after
// the first failure, doubling (jittered) up to maxDelay. Defaults 500ms, 10s.
func WithReconnectBackoff(base, maxDelay time.Duration) Option {
	return func(c *Client) {
		if base > 0 {
			c.reconnectBase = base
		}
		if maxDelay > 0 {
			c.reconnectMax = maxDelay
		}
	}
}

// New makes a client for the Marathon of cluster. It checks the URL, loads
// the CA file and reads the credentials now, so a bad configuration fails at
// start rather than at the first deployment.
func New(cluster string, cfg config.Marathon, opts ...Option) (*Client, error) {
	c := &Client{
		cluster:          cluster,
		attempts:         defaultAttempts,
		retryBase:        defaultRetryBase,
		requestTimeout:   defaultRequestTimeout,
		heartbeatTimeout: defaultHeartbeatTimeout,
		reconnectBase:    defaultReconnectBase,
		reconnectMax:     defaultReconnectMax,
	}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("cluster", cluster)
	c.reconnectMax = max(c.reconnectMax, c.reconnectBase)

	fail := func(format string, args ...any) error {
		return fmt.Errorf("marathon %s: "+format, append([]any{cluster}, args...)...)
	}
	base, err := parseBaseURL(cfg.URL)
	if err != nil {
		return nil, fail("url: %w", err)
	}
	c.base = base

	var roots *x509.CertPool
	if cfg.CAFile != "" {
		if roots, err = loadCAFile(cfg.CAFile); err != nil {
			return nil, fail("caFile: %w", err)
		}
	}
	if c.hc, err = httpClient(c.hc, roots); err != nil {
		return nil, fail("%w", err)
	}
	// Each attempt of a call made in a trace is a client span ("PUT
	// /v2/apps/{id}"), and Marathon gets its traceparent.
	c.hc.Transport = tracehttp.Transport(c.hc.Transport, config.RedactURL)
	if c.auth, err = newAuth(c, cfg.Auth); err != nil {
		return nil, fail("auth: %w", err)
	}
	return c, nil
}

// Cluster is the name of the cluster the client talks to.
func (c *Client) Cluster() string { return c.cluster }

// URL is Marathon's base URL, for logs and status pages. It holds no
// credentials: New refuses URLs with user info.
func (c *Client) URL() string { return c.base.String() }

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		// Credentials in the URL would end up in logs and error messages.
		return nil, errors.New("must not contain credentials; use auth.basic")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("must not have a query or fragment")
	}
	// Behind DC/OS Admin Router Marathon lives under /service/marathon; API
	// paths are appended to this prefix.
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The CA is added to the system roots rather than replacing them, so a
	// cluster whose certificate later moves to a public CA keeps working.
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func httpClient(hc *http.Client, roots *x509.CertPool) (*http.Client, error) {
	if hc == nil {
		// No client-wide Timeout: the event stream stays open for hours.
		// REST calls are bounded per attempt instead.
		hc = &http.Client{}
	} else {
		cp := *hc // never modify the caller's client
		hc = &cp
	}
	if roots == nil {
		return hc, nil
	}
	var tr *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("caFile is set but the HTTP client's transport is a %T, not an *http.Transport", t)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = roots
	hc.Transport = tr
	return hc, nil
}

// endpoint builds the URL of an API path below the cluster URL. rawPath is
// apiPath with each segment escaped; it is what goes on the wire.
func (c *Client) endpoint(apiPath, rawPath string, q url.Values) *url.URL {
	u := *c.base
	u.Path = c.base.Path + apiPath
	u.RawPath = c.base.EscapedPath() + rawPath
	u.RawQuery = q.Encode()
	return &u
}

// call is one logical API request, possibly sent several times.
type call struct {
	method string
	url    *url.URL
	path   string // for errors and logs: the API path without prefix or query
	// route is the path's template, which names the call's spans
	// ("/v2/apps/{id}"); "" names them by the method alone.
	route string
	body  []byte
	// safe means sending it twice does no harm (GET, a login): any
	// transport error or 5xx is retried. Otherwise only failures where
	// Marathon certainly did not act are retried.
	safe   bool
	noAuth bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends cl with retries and authentication. A non-2xx answer is returned
// as an *APIError.
func (c *Client) do(ctx context.Context, cl call) (response, error) {
	reauthed := false
	for attempt := 1; ; attempt++ {
		resp, used, err := c.send(ctx, cl)
		if err != nil {
			if ctx.Err() != nil {
				return response{}, c.transportError(cl, attempt, ctx.Err())
			}
			var le *loginError
			if errors.As(err, &le) { // the login has retried already
				return response{}, fmt.Errorf("marathon %s: %s %s: %w", c.cluster, cl.method, cl.path, err)
			}
			if attempt < c.attempts && (cl.safe || notSent(err)) {
				c.log.Debug("marathon request failed, retrying", "method", cl.method, "path", cl.path, "attempt", attempt, "err", err)
				if err := sleep(ctx, c.backoff(attempt)); err != nil {
					return response{}, c.transportError(cl, attempt, err)
				}
				continue
			}
			return response{}, c.transportError(cl, attempt, err)
		}
		if resp.status >= 200 && resp.status < 300 {
			return resp, nil
		}
		if resp.status == http.StatusUnauthorized && !cl.noAuth && !reauthed {
			// A DC/OS token can be revoked or expire early; one fresh
			// login is worth a retry. A 401 is not processed, so this is
			// safe for writes too, and it does not count as an attempt.
			reauthed = true
			retry, err := c.auth.reauthorize(ctx, used)
			if err != nil {
				return resp, fmt.Errorf("marathon %s: %s %s: %d %s and %w", c.cluster, cl.method, cl.path,
					resp.status, http.StatusText(resp.status), err)
			}
			if retry {
				attempt--
				continue
			}
		}
		apiErr := newAPIError(c.cluster, cl.method, cl.path, resp.status, resp.body)
		// The one HTTP retry rule (httpretry). An answer that says Marathon
		// did not act (503 no leader, 429, 408, 425) is retried for writes
		// too; other retryable 5xx may come after a write was applied (a
		// proxy timing out, say), so only safe calls retry them. A
		// Retry-After is honoured up to the client's own cap: a deployment
		// has a deadline.
		verdict := httpretry.Classify(resp.status, resp.header, time.Now())
		if attempt < c.attempts && verdict.Outcome == httpretry.Retry && (cl.safe || verdict.Unprocessed) {
			d := min(verdict.Wait(c.backoff, attempt), maxRetryDelay)
			c.log.Debug("marathon request refused, retrying", "method", cl.method, "path", cl.path, "attempt", attempt, "status", resp.status, "delay", d)
			if err := sleep(ctx, d); err != nil {
				return response{}, c.transportError(cl, attempt, err)
			}
			continue
		}
		return resp, apiErr
	}
}

// send makes one attempt. It returns the credential it used so a 401 can
// invalidate exactly that one.
func (c *Client) send(ctx context.Context, cl call) (response, string, error) {
	if c.requestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.requestTimeout)
		defer cancel()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	if cl.route != "" {
		ctx = tracehttp.WithRoute(ctx, cl.route)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.url.String(), body)
	if err != nil {
		return response{}, "", err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var used string
	if !cl.noAuth {
		if used, err = c.auth.authorize(ctx, req); err != nil {
			return response{}, "", err
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, used, unwrapURLError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return response{}, used, unwrapURLError(err)
	}
	if len(b) > maxResponseBytes {
		return response{}, used, fmt.Errorf("response larger than %d bytes", maxResponseBytes)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, used, nil
}

func (c *Client) transportError(cl call, attempts int, err error) error {
	return fmt.Errorf("marathon %s: %s %s: %w (%d attempts)", c.cluster, cl.method, cl.path, err, attempts)
}

// unwrapURLError drops url.Error's copy of the URL: it repeats what our own
// message says and would carry a token if one were ever put in a query.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// notSent reports whether a request certainly never reached Marathon, so
// that even a write may be sent again.
func notSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// backoff is the client's schedule for retry n.
func (c *Client) backoff(n int) time.Duration { return backoff(c.retryBase, maxRetryDelay, n) }

// backoff is base·2^(n-1) capped at limit, jittered into its upper half so
// that many clients failing together do not retry in lockstep.
func backoff(base, limit time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
