package oci

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Artifact types that stand for cosign's tag-based attachments
// (sha256-<hex>.sig, .att, .sbom). They are the types cosign itself gives
// these attachments in its OCI 1.1 referrers mode
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

// Referrer is one artifact attached to an image.
type Referrer struct {
	// Digest is its manifest's, in the image's repository.
	Digest       v1.Hash
	ArtifactType string
	// Tag is the cosign tag (sha256-<hex>.sig …) that names it; "" for an
	// OCI 1.1 referrer, which names the image in its subject field.
	Tag string
}

// Attached lists what is attached to subject, both ways: the OCI 1.1
// referrers API (go-containerregistry falls back to the sha256-<hex>
// referrers tag schema index when the registry has no such API, and an
// absent index means none) and cosign's tags. Only the image's own digest
// is asked about, not each child of an index: cosign signs the digest it
// is given (the index), and asking per child would multiply the requests
// by the number of platforms. The result is in a stable order.
func Attached(ctx context.Context, subject name.Digest, p *remote.Puller) ([]Referrer, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		out      []Referrer
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
		refs, err := OCIReferrers(ctx, subject, p)
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
			desc, err := p.Get(ctx, subject.Context().Digest(d.Digest.String()))
			if err != nil {
				fail(err)
				return
			}
			refs[i].ArtifactType = desc.ArtifactType
		}
		mu.Lock()
		defer mu.Unlock()
		for _, d := range refs {
			out = append(out, Referrer{Digest: d.Digest, ArtifactType: d.ArtifactType})
		}
	})
	for _, ct := range cosignTags {
		wg.Go(func() {
			tag := subject.Context().Tag(CosignTag(subject.DigestStr(), ct.suffix))
			desc, err := p.Head(ctx, tag)
			if IsNotFound(err) {
				return
			}
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			out = append(out, Referrer{Digest: desc.Digest, ArtifactType: ct.artifactType, Tag: tag.TagStr()})
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	// A stable order makes logs and copies reproducible.
	slices.SortFunc(out, func(a, b Referrer) int {
		return strings.Compare(a.Tag+"|"+a.Digest.String(), b.Tag+"|"+b.Digest.String())
	})
	return out, nil
}

// OCIReferrers are the descriptors that the referrers API (or its tag
// fallback) lists for subject.
func OCIReferrers(ctx context.Context, subject name.Digest, p *remote.Puller) ([]v1.Descriptor, error) {
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

// CosignTag is cosign's tag for an attachment of the image with digest d.
func CosignTag(d, suffix string) string {
	return strings.Replace(d, ":", "-", 1) + "." + suffix
}

// MissingTypes are the required artifact types that no referrer has.
func MissingTypes(refs []Referrer, required []string) []string {
	var missing []string
	for _, t := range required {
		if slices.Contains(missing, t) {
			continue
		}
		if !slices.ContainsFunc(refs, func(r Referrer) bool { return r.ArtifactType == t }) {
			missing = append(missing, t)
		}
	}
	return missing
}
