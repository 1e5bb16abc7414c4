package copier

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Artifact types that stand for cosign's tag-based attachments
// (sha256-<hex>.sig, .att, .sbom) in Request.RequireReferrers. They are the
// types cosign itself gives these attachments in its OCI 1.1 referrers mode
// (ArtifactType(name) = "application/vnd.dev.cosign.artifact.<name>.v1+json"),
// so a requirement holds whichever way the image was signed.
const (
	CosignSignatureType   = "application/vnd.dev.cosign.artifact.sig.v1+json"
	CosignAttestationType = "application/vnd.dev.cosign.artifact.att.v1+json"
	CosignSBOMType        = "application/vnd.dev.cosign.artifact.sbom.v1+json"
)

var cosignTags = []struct{ suffix, artifactType string }{
	{"sig", CosignSignatureType},
	{"att", CosignAttestationType},
	{"sbom", CosignSBOMType},
}

// referrer is one artifact attached to the source image.
type referrer struct {
	digest       v1.Hash // its manifest in the source repository
	artifactType string
	// tag is the cosign tag (sha256-<hex>.sig …) that names it; "" for an
	// OCI 1.1 referrer, which names the image in its subject field.
	tag string
}

// sourceReferrers lists what is attached to the source image, both ways:
// the OCI 1.1 referrers API (go-containerregistry falls back to the
// sha256-<hex> referrers tag schema index when the registry has no such
// API, and an absent index means none) and cosign's tags. Only the image's
// own digest is asked about, not each child of an index: cosign signs the
// digest it is given (the index), and asking per child would multiply the
// requests by the number of platforms.
func (r *copyRun) sourceReferrers(ctx context.Context) ([]referrer, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		out      []referrer
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	wg.Go(func() {
		refs, err := r.ociReferrers(ctx, r.src, r.srcPull)
		if err != nil {
			fail(err)
			return
		}
		for i, d := range refs {
			if d.ArtifactType != "" {
				continue
			}
			// Not every referrers tag index records artifactType; the
			// manifest says (go-containerregistry derives it from
			// artifactType or the config media type).
			desc, err := r.srcPull.Get(ctx, r.src.Context().Digest(d.Digest.String()))
			if err != nil {
				fail(err)
				return
			}
			refs[i].ArtifactType = desc.ArtifactType
		}
		mu.Lock()
		defer mu.Unlock()
		for _, d := range refs {
			out = append(out, referrer{digest: d.Digest, artifactType: d.ArtifactType})
		}
	})
	for _, ct := range cosignTags {
		wg.Go(func() {
			tag := r.src.Context().Tag(cosignTag(r.src.DigestStr(), ct.suffix))
			desc, err := r.srcPull.Head(ctx, tag)
			if isNotFound(err) {
				return
			}
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			out = append(out, referrer{digest: desc.Digest, artifactType: ct.artifactType, tag: tag.TagStr()})
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	// A stable order makes logs and copies reproducible.
	slices.SortFunc(out, func(a, b referrer) int {
		return strings.Compare(a.tag+"|"+a.digest.String(), b.tag+"|"+b.digest.String())
	})
	return out, nil
}

// ociReferrers are the descriptors that the referrers API (or its tag
// fallback) lists for subject.
func (r *copyRun) ociReferrers(ctx context.Context, subject name.Digest, p *remote.Puller) ([]v1.Descriptor, error) {
	idx, err := remote.Referrers(subject, remote.Reuse(p), remote.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	return m.Manifests, nil
}

// cosignTag is cosign's tag for an attachment of the image with digest d.
func cosignTag(d, suffix string) string {
	return strings.Replace(d, ":", "-", 1) + "." + suffix
}

// missingTypes are the required artifact types that no referrer has.
func missingTypes(refs []referrer, required []string) []string {
	var missing []string
	for _, t := range required {
		if slices.Contains(missing, t) {
			continue
		}
		if !slices.ContainsFunc(refs, func(r referrer) bool { return r.artifactType == t }) {
			missing = append(missing, t)
		}
	}
	return missing
}

// copyReferrers copies the referrers that the target lacks and returns how
// many it wrote.
func (r *copyRun) copyReferrers(ctx context.Context, refs []referrer) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	listed := map[v1.Hash]bool{}
	if slices.ContainsFunc(refs, func(ref referrer) bool { return ref.tag == "" }) {
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
		if ref.tag == "" {
			if listed[ref.digest] {
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
	src := r.src.Context().Digest(ref.digest.String())
	dst := r.dst.Context().Digest(ref.digest.String())
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
	dstTag := r.dst.Context().Tag(ref.tag)
	got, err := r.dstPull.Head(ctx, dstTag)
	if err == nil && got.Digest == ref.digest {
		return false, nil
	}
	if err != nil && !isNotFound(err) {
		return false, r.errorf("look up %s: %w", dstTag, err)
	}
	// By digest, so that the copy is what was listed even if the source
	// tag moves meanwhile.
	src := r.src.Context().Digest(ref.digest.String())
	desc, err := r.srcPull.Get(ctx, src)
	if err != nil {
		return false, r.errorf("read %s: %w", src, err)
	}
	if err := r.dstPush.Push(ctx, dstTag, desc); err != nil {
		return false, r.errorf("write %s: %w", dstTag, err)
	}
	return true, nil
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
