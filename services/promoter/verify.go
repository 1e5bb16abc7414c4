package promoter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/verify"
	"github.com/slipway-cd/slipway/services/promoter/copier"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

// verification is what the promoter checks of an image before it copies
// it, and how it records that the image passed.
type verification struct {
	// policies are each rule's verify list, built at start; a rule
	// without one is absent.
	policies map[string][]verify.Policy
	// key signs the verification summaries; nil when no rule verifies.
	key        *verify.SummaryKey
	verifierID string
}

// buildVerification builds every rule's policies and loads the summary
// key, reading keys, trusted roots and trust stores now: a bad one stops
// the start (and `slipway config check`) with its key path. The same code
// serves both, so what the check accepts the start accepts.
func buildVerification(c *config.Config) (*verification, error) {
	v := &verification{policies: map[string][]verify.Policy{}}
	var errs []error
	for i, r := range c.Promotions {
		if len(r.Verify) == 0 {
			continue
		}
		list := loaded(r.Verify)
		pols, err := verify.Build(list)
		if err == nil {
			v.policies[r.Name] = pols
			continue
		}
		// Build stops at the first broken entry; each is built alone to
		// report them all in one go (Build names it verify[0]).
		for j, p := range list {
			if _, err := verify.Build([]config.VerifyPolicy{p}); err != nil {
				errs = append(errs, fmt.Errorf("promotions[%d].verify[%d]%s (promotion %s)", i, j, strings.TrimPrefix(err.Error(), "verify[0]"), r.Name))
			}
		}
	}
	if !anyVerify(c) {
		return v, nil
	}
	if c.Verification.Summary.KeyFile == "" {
		errs = append(errs, errors.New("verification.summary.keyFile: is required when a promotion verifies images: "+
			"the promoter signs the verification summary it attaches to what it promoted with this key"))
	} else {
		k, err := verify.LoadSummaryKey(c.Verification.Summary)
		if err != nil {
			errs = append(errs, err)
		}
		v.key = k
	}
	v.verifierID = cmp.Or(c.Verification.Summary.VerifierID, verify.DefaultVerifierID)
	return v, errors.Join(errs...)
}

// loaded is list as the policies take it once the file is loaded: the
// loader reads a keyFile into key (as it does every XFile beside an X), so
// a loaded keyFile is a key, not a second one. list is not changed.
func loaded(list []config.VerifyPolicy) []config.VerifyPolicy {
	out := make([]config.VerifyPolicy, len(list))
	for i, p := range list {
		if c := p.Cosign; c != nil && c.Key != "" && c.KeyFile != "" {
			cp := *c
			cp.KeyFile = ""
			p.Cosign = &cp
		}
		if v := p.Provenance; v != nil && v.Key != "" && v.KeyFile != "" {
			cp := *v
			cp.KeyFile = ""
			p.Provenance = &cp
		}
		out[i] = p
	}
	return out
}

func anyVerify(c *config.Config) bool {
	for _, r := range c.Promotions {
		if len(r.Verify) > 0 {
			return true
		}
	}
	return false
}

// uncheckedError is a policy that could not be checked (the registry did
// not answer): retried, unlike an image that failed a policy.
type uncheckedError struct {
	policy string
	err    error
}

func (e *uncheckedError) Error() string {
	return fmt.Sprintf("verification policy %s could not be checked: %v", e.policy, e.err)
}

func (e *uncheckedError) Unwrap() error { return e.err }

// retryable is whether a failed attempt of a promotion may succeed later:
// the copier's rule for registry errors, and a verification that could
// not be made. An image that fails a policy is final.
func retryable(err error) bool {
	if verify.IsFailure(err) {
		return false
	}
	var u *uncheckedError
	return errors.As(err, &u) || copier.Retryable(err)
}

// verify runs rule r's policies, in order, on the image in its source
// registry (with that registry's credentials); all must pass. It returns
// what passed, or the first policy's *verify.Failure, or an
// *uncheckedError.
func (p *promoter) verify(ctx context.Context, r *rules.Rule, from events.ImageRef) ([]events.Verified, error) {
	pols := p.verification.policies[r.Name]
	if len(pols) == 0 {
		return nil, nil
	}
	ref, opts, err := p.copier.Remote(ctx, copier.Ref{Registry: from.Registry, Repository: from.Repository, Digest: from.Digest})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	out := make([]events.Verified, 0, len(pols))
	for _, pol := range pols {
		v, err := pol.Verify(ctx, verify.Image{Ref: ref, Options: opts})
		if err != nil {
			if verify.IsFailure(err) {
				p.metrics.verifications.WithLabelValues(r.Name, "failed").Inc()
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &uncheckedError{policy: pol.Name(), err: p.copier.Scrub(err)}
		}
		out = append(out, v)
	}
	p.metrics.verifications.WithLabelValues(r.Name, "passed").Inc()
	p.metrics.verifyDuration.WithLabelValues(r.Name).Observe(time.Since(start).Seconds())
	return out, nil
}

// summarize attaches the verification summary of passed to the promoted
// image in the target registry and returns its digest. A summary already
// there for the same policies (an attempt that ended after attaching it)
// is reused.
func (p *promoter) summarize(ctx context.Context, to events.ImageRef, passed []events.Verified) (string, error) {
	ref, opts, err := p.copier.Remote(ctx, copier.Ref{Registry: to.Registry, Repository: to.Repository, Digest: to.Digest})
	if err != nil {
		return "", err
	}
	uri := events.ImageReference(to.Registry, to.Repository, "", to.Digest)
	d, err := verify.Summarize(ctx, verify.Image{Ref: ref, Options: opts}, uri, passed, p.verification.key, p.verification.verifierID, p.now())
	if err != nil {
		return "", fmt.Errorf("attach the verification summary to %s: %w", uri, p.copier.Scrub(err))
	}
	return d, nil
}
