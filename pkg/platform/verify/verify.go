// Package verify checks what a promotion rule requires of an image before
// it is copied: cosign signatures (a public key, or keyless against a
// trusted root and an identity), Notation signatures (a trust store and a
// trust policy) and SLSA provenance (builder, source, build type), each a
// Policy built from the rule's verify list. It also makes and checks the
// verification summary (a SLSA verification summary attestation signed
// with Slipway's own key) that a promotion attaches to what it verified,
// and that a cluster with deploy.requireVerified demands.
//
// Cryptography is the libraries': sigstore-go verifies cosign signatures,
// bundles and DSSE envelopes, notation-go verifies Notation signatures.
// This package finds the signatures in the registry (the tag scheme and
// the OCI 1.1 referrers), hands them over, and says in words what failed.
package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Image is the image to verify: its digest reference in the registry, and
// how to reach that registry (credentials, transport).
type Image struct {
	Ref     name.Digest
	Options []remote.Option
}

// Policy is one verification policy of a rule.
type Policy interface {
	// Name is the policy's name (config name, or "<kind>#<n>").
	Name() string
	// Kind is cosign, notation or provenance.
	Kind() string
	// Verify checks img. It returns what passed (who signed, what was
	// built from where) or an error: a *Failure when the image does not
	// pass (final: retrying does not help), any other error when the
	// check could not be made (the registry did not answer: retryable).
	Verify(ctx context.Context, img Image) (events.Verified, error)
}

// Failure is an image failing a policy, in words an operator understands:
// "no cosign signature by key sha256:ab12… (2 signatures found, signed by
// other keys)".
type Failure struct {
	Policy string
	Reason string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("verification policy %s: %s", f.Policy, f.Reason)
}

// IsFailure reports whether err is an image failing a policy (as opposed
// to a check that could not be made).
func IsFailure(err error) bool {
	var f *Failure
	return errors.As(err, &f)
}

// Kinds are the kinds of policy, each built by its constructor from its
// part of config.VerifyPolicy. A new kind is one file and one line here.
var kinds = []struct {
	Kind  string
	Set   func(config.VerifyPolicy) bool
	Build func(name string, p config.VerifyPolicy) (Policy, error)
}{
	{"cosign", func(p config.VerifyPolicy) bool { return p.Cosign != nil }, buildCosign},
	{"notation", func(p config.VerifyPolicy) bool { return p.Notation != nil }, buildNotation},
	{"provenance", func(p config.VerifyPolicy) bool { return p.Provenance != nil }, buildProvenance},
}

// Build builds the policies of a rule's verify list, reading their keys,
// trusted roots and trust stores now: a bad one fails here, at load, with
// its path (verify[i].cosign.keyFile: …).
func Build(list []config.VerifyPolicy) ([]Policy, error) {
	out := make([]Policy, 0, len(list))
	for i, p := range list {
		var set []string
		for _, k := range kinds {
			if k.Set(p) {
				set = append(set, k.Kind)
			}
		}
		if len(set) != 1 {
			return nil, fmt.Errorf("verify[%d]: set exactly one of cosign, notation, provenance", i)
		}
		kind := set[0]
		name := p.Name
		if name == "" {
			name = fmt.Sprintf("%s#%d", kind, i+1)
		}
		for _, k := range kinds {
			if k.Kind == kind {
				pol, err := k.Build(name, p)
				if err != nil {
					return nil, fmt.Errorf("verify[%d].%s: %w", i, kind, err)
				}
				out = append(out, pol)
			}
		}
	}
	return out, nil
}
