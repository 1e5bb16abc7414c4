package copier

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// Artifact types that stand for cosign's tag-based attachments
// (sha256-<hex>.sig, .att, .sbom) in Request.RequireReferrers.
const (
	CosignSignatureType   = oci.CosignSignatureType
	CosignAttestationType = oci.CosignAttestationType
	CosignSBOMType        = oci.CosignSBOMType
)

// referrer is one artifact attached to the source image.
type referrer = oci.Referrer

// sourceReferrers lists what is attached to the source image (see
// oci.Attached).
func (r *copyRun) sourceReferrers(ctx context.Context) ([]referrer, error) {
	return oci.Attached(ctx, r.src, r.srcPull)
}

// ociReferrers are the descriptors that the referrers API (or its tag
// fallback) lists for subject.
func (r *copyRun) ociReferrers(ctx context.Context, subject name.Digest, p *remote.Puller) ([]v1.Descriptor, error) {
	return oci.OCIReferrers(ctx, subject, p)
}

// cosignTag is cosign's tag for an attachment of the image with digest d.
func cosignTag(d, suffix string) string { return oci.CosignTag(d, suffix) }

// missingTypes are the required artifact types that no referrer has.
func missingTypes(refs []referrer, required []string) []string {
	return oci.MissingTypes(refs, required)
}

// copyReferrers copies the referrers that the target lacks and returns how
// many it wrote.
func (r *copyRun) copyReferrers(ctx context.Context, refs []referrer) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	listed := map[v1.Hash]bool{}
	if slices.ContainsFunc(refs, func(ref referrer) bool { return ref.Tag == "" }) {
		descs, err := r.ociReferrers(ctx, r.dst, r.dstPull)
		if err != nil {
			return 0, r.errorf("list referrers of %s: %w", r.dst, err)
		}
		for _, d := range descs {
			listed[d.Digest] = true
		}
	}
	n := 0
	for _, ref := range refs {
		var (
			wrote bool
			err   error
		)
		if ref.Tag == "" {
			if listed[ref.Digest] {
				continue
			}
			wrote, err = r.copyOCIReferrer(ctx, ref)
		} else {
			wrote, err = r.copyCosignTag(ctx, ref)
		}
		if err != nil {
			return n, err
		}
		if wrote {
			n++
		}
	}
	return n, nil
}

// copyOCIReferrer copies a referrer that the target's referrers listing
// lacks. The manifest keeps its subject, so a registry with the referrers
// API indexes it; for one without, go-containerregistry's manifest write
// adds it to the sha256-<hex> tag index.
func (r *copyRun) copyOCIReferrer(ctx context.Context, ref referrer) (bool, error) {
	src := r.src.Context().Digest(ref.Digest.String())
	dst := r.dst.Context().Digest(ref.Digest.String())
	desc, err := r.srcPull.Get(ctx, src)
	if err != nil {
		return false, r.errorf("read referrer %s: %w", src, err)
	}
	_, err = r.dstPull.Head(ctx, dst)
	switch {
	case isNotFound(err):
		if err := r.dstPush.Push(ctx, dst, desc); err != nil {
			return false, r.errorf("write referrer %s: %w", dst, err)
		}
		return true, nil
	case err != nil:
		return false, r.errorf("look up referrer %s: %w", dst, err)
	}
	// The manifest is there but not listed: an earlier copy stopped between
	// the manifest and the tag index. Putting the manifest again (its blobs
	// are there) updates the index; without a subject there is nothing to
	// index.
	var m struct {
		Subject *v1.Descriptor `json:"subject"`
	}
	if json.Unmarshal(desc.Manifest, &m) != nil || m.Subject == nil {
		return false, nil
	}
	if err := r.dstPush.Put(ctx, dst, desc); err != nil {
		return false, r.errorf("index referrer %s: %w", dst, err)
	}
	return true, nil
}

// copyCosignTag copies a cosign attachment and its tag unless the target
// tag is already at the same digest. The tag name carries the image digest,
// which a byte-identical copy keeps, so it is the same in the target.
// cosign replaces the manifest when it adds a signature, so a target tag at
// another digest is overwritten with the source's.
func (r *copyRun) copyCosignTag(ctx context.Context, ref referrer) (bool, error) {
	dstTag := r.dst.Context().Tag(ref.Tag)
	got, err := r.dstPull.Head(ctx, dstTag)
	if err == nil && got.Digest == ref.Digest {
		return false, nil
	}
	if err != nil && !isNotFound(err) {
		return false, r.errorf("look up %s: %w", dstTag, err)
	}
	// By digest, so that the copy is what was listed even if the source
	// tag moves meanwhile.
	src := r.src.Context().Digest(ref.Digest.String())
	desc, err := r.srcPull.Get(ctx, src)
	if err != nil {
		return false, r.errorf("read %s: %w", src, err)
	}
	if err := r.dstPush.Push(ctx, dstTag, desc); err != nil {
		return false, r.errorf("write %s: %w", dstTag, err)
	}
	return true, nil
}

func isNotFound(err error) bool { return oci.IsNotFound(err) }
