package testkit

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of cosign's tag-based attachments (cosign sign without the
// OCI 1.1 referrers mode).
const (
	// CosignSimpleSigningMediaType is the layer media type of a cosign
	// signature manifest (tag sha256-<hex>.sig).
	CosignSimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// CosignSignatureAnnotation holds the base64 signature of a layer.
	CosignSignatureAnnotation = "dev.cosignproject.cosign/signature"
	// OCIEmptyMediaType is the media type of the OCI 1.1 empty descriptor
	// ("{}"), the config of artifacts that have none.
	OCIEmptyMediaType = "application/vnd.oci.empty.v1+json"
)

// PushReferrer pushes an OCI 1.1 artifact that refers to subject, a digest
// reference "host/repo@sha256:…" that must exist: an OCI image manifest
// with artifactType, the empty config ("{}") and one layer holding data
// (layerMediaType), its subject the subject's descriptor. It is pushed by
// digest into the subject's repository with go-containerregistry, which on a
// registry without the referrers API (Distribution) also adds it to the
// referrers tag schema index (tag sha256-<hex>), so remote.Referrers finds
// it. It returns the artifact's manifest digest.
func PushReferrer(t testing.TB, subject, artifactType, layerMediaType string, data []byte) string {
	t.Helper()
	return PushAnnotatedReferrer(t, subject, artifactType, layerMediaType, data, nil)
}

// PushAnnotatedReferrer is PushReferrer with annotations on the artifact's
// manifest (cosign's bundles name their content and predicate type there).
func PushAnnotatedReferrer(t testing.TB, subject, artifactType, layerMediaType string, data []byte, annotations map[string]string) string {
	t.Helper()
	d, ok := parseRef(t, subject).(name.Digest)
	if !ok {
		t.Fatalf("testkit: PushReferrer: subject %q is not a digest reference", subject)
	}
	sub, err := remote.Head(d, RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("testkit: HEAD subject %s: %v", subject, err)
	}
	cfg := static.NewLayer([]byte("{}"), OCIEmptyMediaType)
	layer := static.NewLayer(data, types.MediaType(layerMediaType))
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Subject:       &v1.Descriptor{MediaType: sub.MediaType, Digest: sub.Digest, Size: sub.Size},
		Annotations:   annotations,
	}
	for i, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(d.Context(), l, RemoteOptions(t)...); err != nil {
			t.Fatalf("testkit: push referrer blob: %v", err)
		}
		desc := blobDescriptor(t, l)
		if i == 0 {
			m.Config = desc
		} else {
			m.Layers = append(m.Layers, desc)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("testkit: marshal referrer: %v", err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ref := d.Context().Digest(h.String())
	if err := remote.Put(ref, rawManifest{raw, types.OCIManifestSchema1}, RemoteOptions(t)...); err != nil {
		t.Fatalf("testkit: push referrer %s: %v", ref, err)
	}
	return h.String()
}

// PushCosignSignature pushes what `cosign sign` (tag mode) writes for
// subject, a digest reference "host/repo@sha256:…": an OCI image manifest
// with one application/vnd.dev.cosign.simplesigning.v1+json layer (the
// simple-signing payload naming the digest, a random signature in the
// dev.cosignproject.cosign/signature annotation) under the tag
// sha256-<hex>.sig in the same repository. The signature is not
// verifiable; it is for tests that copy or look for signatures. It returns
// the signature manifest's digest.
func PushCosignSignature(t testing.TB, subject string) string {
	t.Helper()
	d, ok := parseRef(t, subject).(name.Digest)
	if !ok {
		t.Fatalf("testkit: PushCosignSignature: subject %q is not a digest reference", subject)
	}
	payload := simpleSigningPayload(t, d, d.DigestStr())
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer(payload, CosignSimpleSigningMediaType),
		Annotations: map[string]string{CosignSignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		t.Fatalf("testkit: build signature: %v", err)
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	PushImage(t, tag.String(), img)
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func blobDescriptor(t testing.TB, l v1.Layer) v1.Descriptor {
	t.Helper()
	h, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := l.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: size}
}

// rawManifest is a remote.Taggable for a manifest serialised by hand, so
// that its bytes (and digest) are exactly what the caller built.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
