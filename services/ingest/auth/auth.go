// Package auth checks that a webhook comes from the registry a source is
// configured for. Each source has exactly one mechanism: none, a fixed
// header, an HMAC of the raw body, HTTP Basic, or a token in the URL.
//
// Every secret comparison goes through equal (compare.go), which compares
// fixed-length SHA-256 digests in constant time, so neither the content nor
// the length of a secret leaks through response timing. Errors never carry
// secrets or what the sender presented: they are safe to log.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Request is what a mechanism may look at.
type Request struct {
	Header http.Header
	// Body is the raw request body, exactly as received (HMAC covers it).
	Body []byte
	// Token is the {token} path segment; HasToken tells whether the request
	// used the /webhooks/{source}/{token} form at all.
	Token    string
	HasToken bool
}

// Authenticator decides whether a request is from the configured sender.
type Authenticator interface {
	// Authenticate returns nil for an authentic request, or an error that
	// wraps ErrUnauthorized and says why (without any secret material).
	Authenticate(r Request) error
	// Mechanism names the configured mechanism, for logs.
	Mechanism() string
	// NeedsBody tells whether Authenticate looks at the body. Those that
	// do not are asked before the body is read, so a request without the
	// right credentials costs no read of its body.
	NeedsBody() bool
}

// ErrUnauthorized is wrapped by every rejection.
var ErrUnauthorized = errors.New("unauthorized")

// ErrRequired is returned by New for a source without auth. Its message
// starts with the key so the caller can put the source's path in front:
// "ingest.sources[0]." + "auth is required; …".
var ErrRequired = errors.New("auth is required; use {none: true} to accept unauthenticated webhooks")

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
}

// New builds the authenticator of a source. Errors name the key inside
// auth ("hmac.secret is empty"); the caller adds the path to the source.
func New(a *config.Auth) (Authenticator, error) {
	if a == nil {
		return nil, ErrRequired
	}
	var set []string
	if a.None {
		set = append(set, "none")
	}
	if a.Header != nil {
		set = append(set, "header")
	}
	if a.HMAC != nil {
		set = append(set, "hmac")
	}
	if a.Basic != nil {
		set = append(set, "basic")
	}
	if a.URLToken != "" || a.URLTokenFile != "" {
		set = append(set, "urlToken")
	}
	if len(set) != 1 {
		got := "none of them"
		if len(set) > 1 {
			got = strings.Join(set, ", ")
		}
		return nil, fmt.Errorf("exactly one of none, header, hmac, basic, urlToken must be set (got %s)", got)
	}
	switch set[0] {
	case "none":
		return noAuth{}, nil
	case "header":
		return newHeader(a.Header)
	case "hmac":
		return newHMAC(a.HMAC)
	case "basic":
		return newBasic(a.Basic)
	default:
		tok, err := secret(a.URLToken, a.URLTokenFile, "urlToken")
		if err != nil {
			return nil, err
		}
		return newURLToken(tok), nil
	}
}

// secret returns value, or the content of file when value is empty (the
// "*File" keys of the configuration). The config loader may already have
// read the file; reading it here too keeps this package usable on its own.
func secret(value, file, key string) (string, error) {
	if value == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%sFile: %w", key, err)
		}
		value = strings.TrimRight(string(b), "\r\n")
	}
	if value == "" {
		return "", fmt.Errorf("%s is empty", key)
	}
	return value, nil
}

// noAuth accepts everything: the operator said so with {none: true}. A
// token in the URL is still refused, see tokenless.
type noAuth struct{}

func (noAuth) Mechanism() string { return "none" }

func (noAuth) NeedsBody() bool { return false }

func (noAuth) Authenticate(r Request) error { return tokenless(r) }

// tokenless refuses the /webhooks/{source}/{token} form for every mechanism
// but urlToken: a sender that puts a token in the URL of a source that does
// not expect one is misconfigured, and answering 401 (rather than 404) does
// not tell a prober anything beyond what /webhooks/{source} already does.
func tokenless(r Request) error {
	if r.HasToken {
		return reject("this source takes no token in the URL")
	}
	return nil
}
