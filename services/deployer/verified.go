package deployer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
	"github.com/slipway-cd/slipway/pkg/platform/verify"
	"github.com/slipway-cd/slipway/services/deployer/digests"
)

// verifiedGate is a cluster's deploy.requireVerified: Slipway's public key,
// and how to reach the environments' registries (their credentials and
// TLS settings) to read an image's verification summary.
type verifiedGate struct {
	key    *verify.SummaryKey
	access *oci.Access
}

// checkVerifiedConfig checks deploy.requireVerified: it needs Slipway's
// key, which is loaded now so that a bad file fails `config check` and the
// deployer's start, not the first deployment.
func checkVerifiedConfig(c *config.Config, cl config.Cluster, path string, p *config.Problems) {
	if !cl.Deploy.RequireVerified {
		return
	}
	s := c.Verification.Summary
	if s.KeyFile == "" && s.PublicKeyFile == "" {
		p.Add(path+".deploy.requireVerified", "needs Slipway's key to check summaries: set verification.summary.publicKeyFile (or verification.summary.keyFile)")
		return
	}
	if _, err := verify.LoadSummaryKey(s); err != nil {
		p.Add("verification.summary", "%s", strings.TrimPrefix(err.Error(), "verification.summary."))
	}
}

// newVerifiedGates is the gate of each cluster with deploy.requireVerified
// (by name); one key and one registry access serve them all.
func newVerifiedGates(cfg *config.Config) (map[string]*verifiedGate, error) {
	if !slices.ContainsFunc(cfg.Clusters, func(cl config.Cluster) bool { return cl.Deploy.RequireVerified }) {
		return nil, nil
	}
	key, err := verify.LoadSummaryKey(cfg.Verification.Summary)
	if err != nil {
		return nil, err
	}
	g := &verifiedGate{key: key, access: oci.NewAccess(digests.Registries(cfg.Environments))}
	out := map[string]*verifiedGate{}
	for _, cl := range cfg.Clusters {
		if cl.Deploy.RequireVerified {
			out[cl.Name] = g
		}
	}
	return out, nil
}

// checkVerified lets the image through when it carries a verification
// summary signed with Slipway's key; otherwise the image is refused and
// reported once. A registry that does not answer is an error: the event
// comes back later.
func (c *cluster) checkVerified(ctx context.Context, e events.Event, t offer) (bool, error) {
	why, err := c.verifiedGate(ctx, t)
	if err != nil {
		return false, fmt.Errorf("checking the verification summary of %s: %w", t.image.String(), err)
	}
	if why == "" {
		return true, nil
	}
	r, err := refusalOf(e)
	if err != nil {
		return false, err
	}
	r.kind = "unverified"
	r.reason = "no verification summary signed by Slipway's key: " + why
	r.warn = "image not deployed: the cluster requires a verification summary (deploy.requireVerified)"
	return false, c.refuse(ctx, e, t, r)
}

// verifiedGate says why the image fails the gate ("" when it passes).
func (c *cluster) verifiedGate(ctx context.Context, t offer) (string, error) {
	g := c.verified
	if t.image.Digest == "" {
		return "the image's digest is unknown", nil
	}
	host := t.image.Registry
	if !g.access.Configured(host) {
		// Slipway's credentials are not sent to a registry nobody
		// configured; an image there cannot have been promoted.
		return fmt.Sprintf("%s is not an environment's registry", host), nil
	}
	ref, err := name.NewDigest(host+"/"+t.image.Repository+"@"+t.image.Digest, g.access.NameOptions(host)...)
	if err != nil {
		return "", err
	}
	img := verify.Image{Ref: ref, Options: []remote.Option{
		remote.WithAuthFromKeychain(g.access.Keychain()),
		remote.WithTransport(g.access.Transport(host)),
		remote.WithUserAgent("slipway-deployer"),
	}}
	_, err = verify.CheckSummary(ctx, img, g.key)
	var f *verify.Failure
	if errors.As(err, &f) {
		return f.Reason, nil
	}
	return "", g.access.Scrub(err)
}
