// Package resolve finds the digest a tag points to, for webhook formats that
// carry none (Docker Hub, Quay, Nexus): one HEAD on the manifest in the
// environment's registry.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// DefaultTimeout bounds one lookup when ingest.resolveTimeout is not set:
// the registry is waiting for our answer to its webhook meanwhile.
const DefaultTimeout = 3 * time.Second

// Manifest is what a HEAD tells about a tag.
type Manifest struct {
	Digest    string
	MediaType string
	Size      int64
}

// Resolver looks tags up in one registry.
type Resolver struct {
	host    string
	opts    []name.Option
	auth    remote.Option
	timeout time.Duration
}

// New returns a resolver for an environment's registry. With a username
// configured it logs in with it; otherwise it uses the default keychain
// (docker config, credential helpers), which is anonymous when empty.
func New(reg config.Registry, timeout time.Duration) (*Resolver, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	r := &Resolver{host: reg.Host, timeout: timeout, auth: remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if reg.Insecure {
		r.opts = append(r.opts, name.Insecure) // plain http
	}
	if reg.Username != "" {
		pw := reg.Password
		if pw == "" && reg.PasswordFile != "" {
			// The config loader may have read it already; read it here
			// otherwise so the resolver works on its own.
			b, err := os.ReadFile(reg.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("registry.passwordFile: %w", err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		r.auth = remote.WithAuth(&authn.Basic{Username: reg.Username, Password: pw})
	}
	return r, nil
}

// Host is the registry the resolver asks.
func (r *Resolver) Host() string { return r.host }

// Resolve returns the manifest repository:tag points to. Errors name the
// image, never the credentials.
func (r *Resolver) Resolve(ctx context.Context, repository, tag string) (Manifest, error) {
	if r.host == "" {
		return Manifest{}, errors.New("the environment has no registry host")
	}
	image := r.host + "/" + repository + ":" + tag
	ref, err := name.NewTag(image, r.opts...)
	if err != nil {
		return Manifest{}, fmt.Errorf("resolve %s: %w", image, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	d, err := remote.Head(ref, remote.WithContext(ctx), r.auth, remote.WithUserAgent("slipway-ingest"))
	if err != nil {
		return Manifest{}, fmt.Errorf("resolve %s: %w", image, err)
	}
	return Manifest{Digest: d.Digest.String(), MediaType: string(d.MediaType), Size: d.Size}, nil
}
