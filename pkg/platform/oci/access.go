// Package oci is how Slipway's services reach OCI registries with
// go-containerregistry: the configured credentials and TLS setting per
// host (Access), and what is attached to an image (Attached), so that the
// promoter's copies and the deployer's compliance checks ask registries
// the same way.
package oci

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/tracehttp"
)

// Access holds the configured registries: their credentials and whether
// each is insecure. It is safe for concurrent use.
//
// Insecure allows plain http (go-containerregistry tries https first) and
// accepts any TLS certificate, like Docker's insecure-registries. Without
// it https is verified; note that go-containerregistry also falls back to
// http for loopback, localhost, *.local and RFC 1918 addresses whatever
// this says.
type Access struct {
	registries map[string]config.Registry // by normalised host
	keychain   authn.Keychain
	secrets    []string // passwords, scrubbed from error messages

	// Shared so that connections are reused across requests.
	verified, unverified http.RoundTripper
}

// NewAccess returns the access to regs. A host that is not listed, or
// listed without credentials, authenticates with the Docker config.json
// keychain (authn.DefaultKeychain).
func NewAccess(regs []config.Registry) *Access {
	a := &Access{registries: map[string]config.Registry{}}
	for _, r := range regs {
		a.registries[NormHost(r.Host)] = r
		if r.Password != "" {
			a.secrets = append(a.secrets, r.Password)
		}
	}
	a.keychain = authn.NewMultiKeychain(configKeychain{a.registries}, authn.DefaultKeychain)
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		base = http.DefaultTransport.(*http.Transport)
	}
	a.verified = base.Clone()
	insecure := base.Clone()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for hosts configured insecure
	a.unverified = insecure
	return a
}

// NormHost is go-containerregistry's spelling of a registry host (e.g.
// docker.io → index.docker.io), so that configured hosts match references.
func NormHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "" // name.NewRegistry would take it for Docker Hub
	}
	if r, err := name.NewRegistry(h, name.WeakValidation); err == nil {
		return r.RegistryStr()
	}
	return h
}

// Configured reports whether host is one of the registries.
func (a *Access) Configured(host string) bool {
	_, ok := a.registries[NormHost(host)]
	return ok && host != ""
}

// Keychain answers with the configured credentials, then Docker's.
func (a *Access) Keychain() authn.Keychain { return a.keychain }

// NameOptions parse references of host: strictly, and insecure (plain
// http allowed) when it is configured so.
func (a *Access) NameOptions(host string) []name.Option {
	opts := []name.Option{name.StrictValidation}
	if a.registries[NormHost(host)].Insecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// Transport is the round tripper for host's requests. Each request is a
// client span, named by its method (the conventions' name when no route
// template is known); an upload URL's query holds its session, redacted.
func (a *Access) Transport(host string) http.RoundTripper {
	return tracehttp.Transport(a.base(host), config.RedactURL)
}

func (a *Access) base(host string) http.RoundTripper {
	if a.registries[NormHost(host)].Insecure {
		return a.unverified
	}
	return a.verified
}

// Scrub removes configured passwords from err's message, should a server
// or a library ever echo one, keeping err's chain for errors.Is/As.
func (a *Access) Scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range a.secrets {
		clean = strings.ReplaceAll(clean, s, "***")
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// configKeychain answers with the configured credentials, and with
// Anonymous otherwise, which makes authn.MultiKeychain ask the next
// keychain (Docker's config.json).
type configKeychain struct{ regs map[string]config.Registry }

func (k configKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if r, ok := k.regs[NormHost(res.RegistryStr())]; ok && (r.Username != "" || r.Password != "") {
		return &authn.Basic{Username: r.Username, Password: r.Password}, nil
	}
	return authn.Anonymous, nil
}

// IsNotFound reports whether err is a registry's 404.
func IsNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
