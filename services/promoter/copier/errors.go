package copier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
)

// MissingReferrersError is returned when Request.RequireReferrers names
// artifact types that are not attached to the source image. It is
// permanent: retrying cannot attach a signature.
type MissingReferrersError struct {
	// Image is registry/repository@digest of the source.
	Image string
	// Missing are the required artifact types that were not found.
	Missing []string
}

func (e *MissingReferrersError) Error() string {
	return fmt.Sprintf("%s lacks required referrers: %s", e.Image, strings.Join(e.Missing, ", "))
}

// NotFoundError is returned by Resolve for a tag the registry does not
// know. It is permanent.
type NotFoundError struct {
	// Image is registry/repository:tag.
	Image string
}

func (e *NotFoundError) Error() string { return e.Image + " was not found in its registry" }

// errBadInput marks requests that can never succeed as given.
var errBadInput = errors.New("bad copy request")

type badInputError struct{ msg string }

func (e *badInputError) Error() string        { return e.msg }
func (e *badInputError) Is(target error) bool { return target == errBadInput }

func badInput(format string, args ...any) error {
	return &badInputError{msg: fmt.Sprintf(format, args...)}
}

// retryStatusCodes are the answers go-containerregistry's transport
// retries itself: the named ones of the one HTTP retry rule (httpretry).
// 499 and 522, which it retries by default, are left to the rule (a 4xx is
// permanent; 522 is retried by the copy's predicate, not per request).
// go-containerregistry does not read Retry-After: its own back-off applies.
var retryStatusCodes = httpretry.RetryStatuses

// Retryable reports whether a copy that failed with err may succeed later:
// true for the answers the one HTTP retry rule retries (408, 425, 429, 5xx
// but 501 and 505; see httpretry), timeouts, connection errors and a
// cancelled context (the copy was interrupted, not refused); false for
// 401/403/404 and other 4xx answers, a *MissingReferrersError, a
// *NotFoundError, digest mismatches, bad requests and anything not
// recognised as transient.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var (
		missing  *MissingReferrersError
		notFound *NotFoundError
	)
	if errors.As(err, &missing) || errors.As(err, &notFound) || errors.Is(err, errBadInput) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return true
	}
	return transient(err)
}

// transient is Retryable without the cancelled context; it is also
// go-containerregistry's retry predicate for each request.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return httpretry.Retryable(terr.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	// Certificate problems are configuration, not weather.
	var (
		certErr      *tls.CertificateVerificationError
		unknownAuth  x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidCert  x509.CertificateInvalidError
		recordHeader tls.RecordHeaderError
	)
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostnameErr) ||
		errors.As(err, &invalidCert) || errors.As(err, &recordHeader) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	// A request that got no answer at all: the connection closed under
	// it ("server closed idle connection" when a registry goes away
	// mid-upload, a proxy hanging up). Certificates and unknown hosts were
	// sorted out above.
	var urlErr *url.Error
	return errors.As(err, &urlErr)
}

// retryPredicate decides, for go-containerregistry, whether a failed
// request (or upload) is attempted again. It stops once ctx is done:
// go-containerregistry's back-off sleeps do not watch the context.
func (c *Copier) retryPredicate(ctx context.Context) func(error) bool {
	return func(err error) bool {
		if ctx.Err() != nil || !transient(err) {
			return false
		}
		c.log.DebugContext(ctx, "transient registry error; retrying while attempts remain", "error", err)
		return true
	}
}
