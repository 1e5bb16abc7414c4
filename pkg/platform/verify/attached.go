package verify

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// maxAttachment bounds what is read of one signature or attestation: they
// are a few kilobytes, and a registry should not make us read gigabytes.
const maxAttachment = 4 << 20

// TagLayer is one layer of a cosign tag-scheme attachment
// (sha256-<hex>.sig or .att): its content (a simple-signing payload or a
// DSSE envelope) and its annotations (signature, certificate, chain,
// timestamp).
type TagLayer struct {
	MediaType   string
	Content     []byte
	Annotations map[string]string
}

// TagLayers reads the layers of the image's cosign tag sha256-<hex>.<suffix>
// (suffix "sig" or "att"). An absent tag is none (nil, nil); any other
// registry error is returned (retryable).
func TagLayers(ctx context.Context, img Image, suffix string) ([]TagLayer, error) {
	tag := img.Ref.Context().Tag(oci.CosignTag(img.Ref.DigestStr(), suffix))
	im, err := remote.Image(tag, append(img.Options, remote.WithContext(ctx))...)
	if oci.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	m, err := im.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	out := make([]TagLayer, 0, len(m.Layers))
	for _, d := range m.Layers {
		l, err := im.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("read %s layer %s: %w", tag, d.Digest, err)
		}
		content, err := readLayer(l.Compressed)
		if err != nil {
			return nil, fmt.Errorf("read %s layer %s: %w", tag, d.Digest, err)
		}
		out = append(out, TagLayer{MediaType: string(d.MediaType), Content: content, Annotations: d.Annotations})
	}
	return out, nil
}

// ReferrerBundle is a Sigstore bundle attached to the image as an OCI 1.1
// referrer, with its manifest's annotations (the predicate type of an
// attestation is in dev.sigstore.bundle.predicateType).
type ReferrerBundle struct {
	Digest      string
	Content     []byte
	Annotations map[string]string
}

// ReferrerBundles reads the Sigstore bundles (artifactType
// application/vnd.dev.sigstore.bundle.v0.3+json) that refer to the image,
// through the referrers API or its tag fallback. Registry errors are
// returned (retryable).
func ReferrerBundles(ctx context.Context, img Image) ([]ReferrerBundle, error) {
	p, err := remote.NewPuller(append(img.Options, remote.WithContext(ctx))...)
	if err != nil {
		return nil, err
	}
	descs, err := oci.OCIReferrers(ctx, img.Ref, p)
	if err != nil {
		return nil, fmt.Errorf("list the referrers of %s: %w", img.Ref, err)
	}
	var out []ReferrerBundle
	for _, d := range descs {
		// An index without artifactType (some tag fallbacks) is read to
		// find out; one naming another type is not a bundle.
		if d.ArtifactType != "" && d.ArtifactType != BundleMediaType {
			continue
		}
		ref := img.Ref.Context().Digest(d.Digest.String())
		im, err := remote.Image(ref, remote.Reuse(p), remote.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read referrer %s: %w", ref, err)
		}
		m, err := im.Manifest()
		if err != nil {
			return nil, fmt.Errorf("read referrer %s: %w", ref, err)
		}
		if m.ArtifactType != BundleMediaType && string(m.Config.MediaType) != BundleMediaType {
			continue
		}
		for _, l := range m.Layers {
			if string(l.MediaType) != BundleMediaType {
				continue
			}
			layer, err := im.LayerByDigest(l.Digest)
			if err != nil {
				return nil, fmt.Errorf("read referrer %s: %w", ref, err)
			}
			content, err := readLayer(layer.Compressed)
			if err != nil {
				return nil, fmt.Errorf("read referrer %s: %w", ref, err)
			}
			out = append(out, ReferrerBundle{Digest: d.Digest.String(), Content: content, Annotations: m.Annotations})
		}
	}
	return out, nil
}

func readLayer(open func() (io.ReadCloser, error)) ([]byte, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxAttachment+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAttachment {
		return nil, fmt.Errorf("larger than %d bytes", maxAttachment)
	}
	return b, nil
}
