// Package copier copies an image, by digest and byte for byte, from one
// registry repository to another: every platform of an index, the blobs
// that the target lacks (mounted when both repositories are on one
// registry), then the image's signatures, SBOMs and attestations, and the
// tag last, so that a tag in the target always names a complete image.
//
// The registry protocol is go-containerregistry's (remote.Puller and
// remote.Pusher, as crane copy uses them): blobs stream from source to
// target without being held in memory, a few at a time, with retries on
// transient failures.
package copier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// Defaults for Options.
const (
	DefaultJobs    = 4
	DefaultRetries = 5
	// defaultBackoff is the wait before the second attempt; it doubles for
	// each further attempt.
	defaultBackoff = 200 * time.Millisecond
)

// Ref names an image in a registry.
type Ref struct {
	// Registry is host[:port].
	Registry   string
	Repository string
	Tag        string
	// Digest is "sha256:<hex>".
	Digest string
}

// String is registry/repository[:tag][@digest], for messages.
func (r Ref) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Options configures a Copier.
type Options struct {
	// Registries are the credentials and the insecure flag per host. A host
	// that is not listed, or listed without credentials, authenticates with
	// the Docker config.json keychain (authn.DefaultKeychain).
	//
	// Insecure allows plain http (go-containerregistry tries https first)
	// and accepts any TLS certificate, like Docker's insecure-registries.
	// Without it https is verified; note that go-containerregistry also
	// falls back to http for loopback, localhost, *.local and RFC 1918
	// addresses whatever this says.
	Registries []config.Registry
	// Jobs is how many blobs are copied in parallel (default 4, like crane).
	Jobs int
	// Retries is how many attempts a request gets on 408, 429, 5xx and
	// connection errors (default 5), with exponential back-off from 200ms.
	Retries int
	// Logger gets debug records of each copy; nil discards them.
	Logger *slog.Logger
}

// Request is one copy.
type Request struct {
	// From.Digest is required: promotions copy exactly what was approved.
	// From.Tag is ignored.
	From Ref
	// To.Tag, if set, is put after everything else is in the target. To.Digest,
	// if set, must equal From.Digest.
	To Ref
	// CopyReferrers copies the image's signatures, SBOMs and attestations:
	// OCI 1.1 referrers (the referrers API, or its sha256-<hex> tag
	// fallback) and cosign's sha256-<hex>.sig/.att/.sbom tags.
	CopyReferrers bool
	// RequireReferrers are artifact types that must be attached to From
	// (for cosign tags: CosignSignatureType, CosignAttestationType,
	// CosignSBOMType). If one is missing Copy writes nothing and returns a
	// *MissingReferrersError.
	RequireReferrers []string
}

// Result is what a copy did.
type Result struct {
	// Digest is the image's digest in the target (From.Digest).
	Digest string
	// BlobsCopied counts blobs uploaded or mounted into the target
	// repository, referrers' blobs included; BlobsMounted is the part of
	// them that a cross-repository mount provided (no bytes sent).
	BlobsCopied, BlobsMounted int
	// BlobsSkipped counts blobs the target repository already had.
	BlobsSkipped int
	// BytesCopied counts blob bytes uploaded (a retried upload counts again).
	BytesCopied int64
	// ReferrersCopied counts referrer manifests written to the target.
	ReferrersCopied int
	// AlreadyThere: the target tag (or, without To.Tag, the digest) was
	// already at From.Digest, so the image itself was not written.
	AlreadyThere bool
}

// Copier copies images. It is safe for concurrent use.
type Copier struct {
	jobs, retries int
	backoff       time.Duration
	log           *slog.Logger

	// access is the configured registries' credentials and TLS.
	access *oci.Access
}

// New returns a Copier.
func New(opts Options) *Copier {
	c := &Copier{
		jobs:    opts.Jobs,
		retries: opts.Retries,
		backoff: defaultBackoff,
		log:     opts.Logger,
		access:  oci.NewAccess(opts.Registries),
	}
	if c.jobs <= 0 {
		c.jobs = DefaultJobs
	}
	if c.retries <= 0 {
		c.retries = DefaultRetries
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// tracer makes the span of each Copy.
var tracer = otel.Tracer("github.com/slipway-cd/slipway/services/promoter/copier")

// copyRun is the state of one Copy.
type copyRun struct {
	req   Request
	src   name.Digest // the image in the source repository
	dst   name.Digest // the image in the target repository
	tag   *name.Tag   // To.Tag, nil without one
	count *counter

	srcPull *remote.Puller
	dstPull *remote.Puller
	dstPush *remote.Pusher
}

// Copy copies req.From to req.To; see the package documentation.
func (c *Copier) Copy(ctx context.Context, req Request) (res Result, err error) {
	start := time.Now()
	// One name for every copy (a collector groups by name): the images are
	// attributes.
	ctx, span := tracer.Start(ctx, "copy image",
		trace.WithAttributes(
			attribute.String("slipway.copy.from", req.From.String()),
			attribute.String("slipway.copy.to", req.To.String()),
			attribute.String("slipway.image.digest", req.From.Digest),
		))
	defer func() {
		span.SetAttributes(
			attribute.Bool("slipway.copy.already_there", res.AlreadyThere),
			attribute.Int("slipway.copy.blobs_copied", res.BlobsCopied),
			attribute.Int("slipway.copy.blobs_mounted", res.BlobsMounted),
			attribute.Int("slipway.copy.blobs_skipped", res.BlobsSkipped),
			attribute.Int64("slipway.copy.bytes_copied", res.BytesCopied),
			attribute.Int("slipway.copy.referrers_copied", res.ReferrersCopied),
		)
		defer span.End()
		if err != nil {
			err = c.scrub(err)
			span.RecordError(err)
			span.SetStatus(codes.Error, "copy failed")
			c.log.DebugContext(ctx, "copy failed", "from", req.From.String(), "to", req.To.String(),
				"error", err, "retryable", Retryable(err), "duration", time.Since(start))
			return
		}
		c.log.DebugContext(ctx, "copied", "from", req.From.String(), "to", req.To.String(),
			"alreadyThere", res.AlreadyThere, "blobsCopied", res.BlobsCopied, "blobsMounted", res.BlobsMounted,
			"blobsSkipped", res.BlobsSkipped, "bytesCopied", res.BytesCopied,
			"referrersCopied", res.ReferrersCopied, "duration", time.Since(start))
	}()

	r, err := c.newRun(ctx, req)
	if err != nil {
		return Result{}, err
	}
	res.Digest = r.src.DigestStr()
	// Counts are reported on failure too: they say how far the copy got.
	defer r.count.fill(&res)

	// Listing the referrers costs a few small requests; do it only when
	// they are needed, and before anything is written so that a missing
	// signature leaves the target untouched.
	var refs []referrer
	if req.CopyReferrers || len(req.RequireReferrers) > 0 {
		if refs, err = r.sourceReferrers(ctx); err != nil {
			return res, r.errorf("list referrers of %s: %w", r.src, err)
		}
		if missing := missingTypes(refs, req.RequireReferrers); len(missing) > 0 {
			return res, &MissingReferrersError{Image: r.src.String(), Missing: missing}
		}
	}

	there, err := r.alreadyThere(ctx)
	if err != nil {
		return res, err
	}
	if there {
		// The image is complete (a registry accepts a manifest only when
		// everything it references is there); referrers may have been
		// added to the source since, and are cheap to check.
		res.AlreadyThere = true
		if req.CopyReferrers {
			res.ReferrersCopied, err = r.copyReferrers(ctx, refs)
		}
		return res, err
	}

	desc, err := r.srcPull.Get(ctx, r.src)
	if err != nil {
		return res, r.errorf("read %s: %w", r.src, err)
	}
	// By digest first: the tag must not name the image before its
	// children, blobs and referrers are all in the target.
	if err := r.dstPush.Push(ctx, r.dst, desc); err != nil {
		return res, r.errorf("write %s: %w", r.dst, err)
	}
	if req.CopyReferrers {
		if res.ReferrersCopied, err = r.copyReferrers(ctx, refs); err != nil {
			return res, err
		}
	}
	if r.tag != nil {
		if err := r.dstPush.Put(ctx, *r.tag, desc); err != nil {
			return res, r.errorf("tag %s: %w", r.tag, err)
		}
	}
	return res, nil
}

func (c *Copier) newRun(ctx context.Context, req Request) (*copyRun, error) {
	if req.From.Digest == "" {
		return nil, badInput("copy %s: the source needs a digest", req.From)
	}
	if req.To.Digest != "" && req.To.Digest != req.From.Digest {
		return nil, badInput("copy %s to %s: the target digest differs from the source digest", req.From, req.To)
	}
	srcRepo, err := c.repository(req.From)
	if err != nil {
		return nil, err
	}
	dstRepo, err := c.repository(req.To)
	if err != nil {
		return nil, err
	}
	r := &copyRun{req: req}
	if r.src, err = name.NewDigest(srcRepo.String()+"@"+req.From.Digest, c.nameOpts(req.From.Registry)...); err != nil {
		return nil, badInput("copy %s: bad digest: %v", req.From, err)
	}
	r.dst = dstRepo.Digest(r.src.DigestStr())
	if req.To.Tag != "" {
		t, err := name.NewTag(dstRepo.String()+":"+req.To.Tag, c.nameOpts(req.To.Registry)...)
		if err != nil {
			return nil, badInput("copy to %s: bad tag: %v", req.To, err)
		}
		r.tag = &t
	}

	// The target's requests go through a counter: go-containerregistry's
	// progress API reports bytes only, not which blobs were skipped or
	// mounted, and the counts are part of image.promoted.
	r.count = newCounter(c.baseTransport(req.To.Registry))
	common := append(c.options(ctx), remote.WithJobs(c.jobs))
	if r.srcPull, err = remote.NewPuller(slices.Concat(common, []remote.Option{remote.WithTransport(c.baseTransport(req.From.Registry))})...); err != nil {
		return nil, err
	}
	dstOpts := slices.Concat(common, []remote.Option{remote.WithTransport(r.count)})
	if r.dstPull, err = remote.NewPuller(dstOpts...); err != nil {
		return nil, err
	}
	if r.dstPush, err = remote.NewPusher(dstOpts...); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *Copier) repository(ref Ref) (name.Repository, error) {
	if ref.Registry == "" || ref.Repository == "" {
		return name.Repository{}, badInput("image %s: registry and repository are required", ref)
	}
	repo, err := name.NewRepository(ref.Registry+"/"+ref.Repository, c.nameOpts(ref.Registry)...)
	if err != nil {
		return name.Repository{}, badInput("image %s: %v", ref, err)
	}
	return repo, nil
}

func (c *Copier) nameOpts(host string) []name.Option { return c.access.NameOptions(host) }

func (c *Copier) baseTransport(host string) http.RoundTripper { return c.access.Transport(host) }

// alreadyThere HEADs the target tag (or digest): when it already names the
// image, nothing of the image needs writing, and asking about each blob
// would make a re-promotion cost as many requests as the image has blobs.
func (r *copyRun) alreadyThere(ctx context.Context) (bool, error) {
	var ref name.Reference = r.dst
	if r.tag != nil {
		ref = *r.tag
	}
	desc, err := r.dstPull.Head(ctx, ref)
	if err != nil {
		var terr *transport.Error
		// Some registries answer 403 rather than 404 for a repository that
		// does not exist yet (go-containerregistry's own existence check
		// allows for it); a real lack of permission fails at the first write.
		if errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound || terr.StatusCode == http.StatusForbidden) {
			return false, nil
		}
		return false, r.errorf("look up %s: %w", ref, err)
	}
	return desc.Digest.String() == r.src.DigestStr(), nil
}

// errorf wraps err with the source and target image names (never
// credentials; Copy also scrubs configured passwords).
func (r *copyRun) errorf(format string, args ...any) error {
	return fmt.Errorf("copy %s to %s: %w", r.req.From, r.req.To, fmt.Errorf(format, args...))
}

// scrub removes configured passwords from err's message.
func (c *Copier) scrub(err error) error { return c.access.Scrub(err) }

// Resolve returns the digest ref.Tag points to in ref's repository: one
// HEAD on the manifest, with the registry's credentials. A tag the
// registry does not know is a *NotFoundError.
func (c *Copier) Resolve(ctx context.Context, ref Ref) (string, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return "", err
	}
	tag, err := name.NewTag(repo.String()+":"+ref.Tag, c.nameOpts(ref.Registry)...)
	if err != nil {
		return "", badInput("image %s: bad tag: %v", ref, err)
	}
	desc, err := remote.Head(tag, remote.WithContext(ctx), remote.WithAuthFromKeychain(c.access.Keychain()),
		remote.WithTransport(c.baseTransport(ref.Registry)), remote.WithUserAgent("slipway-promoter"))
	if oci.IsNotFound(err) {
		return "", &NotFoundError{Image: ref.String()}
	}
	if err != nil {
		return "", c.scrub(fmt.Errorf("look up %s: %w", ref, err))
	}
	return desc.Digest.String(), nil
}

// Remote is ref's image by digest and the options that reach its registry
// as a copy does (credentials, TLS, retries of transient failures), for
// the promoter's other requests about an image it promotes: verifying
// its signatures in the source, attaching the verification summary in
// the target.
func (c *Copier) Remote(ctx context.Context, ref Ref) (name.Digest, []remote.Option, error) {
	if ref.Digest == "" {
		return name.Digest{}, nil, badInput("image %s: a digest is required", ref)
	}
	repo, err := c.repository(ref)
	if err != nil {
		return name.Digest{}, nil, err
	}
	d, err := name.NewDigest(repo.String()+"@"+ref.Digest, c.nameOpts(ref.Registry)...)
	if err != nil {
		return name.Digest{}, nil, badInput("image %s: bad digest: %v", ref, err)
	}
	return d, append(c.options(ctx), remote.WithTransport(c.baseTransport(ref.Registry))), nil
}

// options are every request's: credentials, retries, the user agent.
func (c *Copier) options(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.access.Keychain()),
		remote.WithRetryBackoff(remote.Backoff{Duration: c.backoff, Factor: 2, Jitter: 0.1, Steps: c.retries}),
		remote.WithRetryStatusCodes(retryStatusCodes...),
		remote.WithRetryPredicate(c.retryPredicate(ctx)),
		remote.WithUserAgent("slipway-promoter"),
	}
}

// Scrub removes configured passwords from err's message, for errors of
// requests made with Remote's options.
func (c *Copier) Scrub(err error) error {
	if err == nil {
		return nil
	}
	return c.scrub(err)
}
