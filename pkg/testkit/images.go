package testkit

import (
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Sizes of the random content: small, so pushes are fast.
const (
	randomLayerBytes = 256
	randomLayers     = 2
)

// Platforms are the platforms PushRandomIndex gives its children, in order.
var Platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "linux", Architecture: "386"},
	{OS: "linux", Architecture: "riscv64"},
	{OS: "linux", Architecture: "arm", Variant: "v6"},
}

// credentials maps a registry host to {username, password}, for registries
// started with auth.
var credentials sync.Map

// Keychain resolves the credentials of registries started by NewRegistry
// with Username/Password (anonymous for any other registry). Use it with
// remote.WithAuthFromKeychain when calling go-containerregistry directly.
var Keychain authn.Keychain = keychain{}

type keychain struct{}

func (keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if c, ok := credentials.Load(res.RegistryStr()); ok {
		up := c.([2]string)
		return &authn.Basic{Username: up[0], Password: up[1]}, nil
	}
	return authn.Anonymous, nil
}

// RemoteOptions are the go-containerregistry remote options the helpers use:
// the test's context and Keychain.
func RemoteOptions(t testing.TB) []remote.Option {
	return []remote.Option{remote.WithContext(t.Context()), remote.WithAuthFromKeychain(Keychain)}
}

func parseRef(t testing.TB, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("testkit: parse reference %q: %v", ref, err)
	}
	return r
}

// PushRandomImage pushes a new random image (Docker schema 2 manifest,
// application/vnd.docker.distribution.manifest.v2+json, two small layers) to
// ref, e.g. "127.0.0.1:5000/apps/web:1.0.0", and returns it.
func PushRandomImage(t testing.TB, ref string) v1.Image {
	t.Helper()
	img, err := random.Image(randomLayerBytes, randomLayers)
	if err != nil {
		t.Fatalf("testkit: random image: %v", err)
	}
	PushImage(t, ref, img)
	return img
}

// PushImage pushes img to ref with remote.Write and returns its manifest
// digest ("sha256:…"). Note that remote.Write first HEADs a tag ref and
// skips the manifest PUT (so the registry sends no push notification) when
// the tag already points at img's digest.
func PushImage(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	if err := remote.Write(parseRef(t, ref), img, RemoteOptions(t)...); err != nil {
		t.Fatalf("testkit: push image to %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("testkit: digest of the image pushed to %s: %v", ref, err)
	}
	return d.String()
}

// PushRandomIndex pushes a new random multi-platform image index (OCI,
// application/vnd.oci.image.index.v1+json) with platforms children, each an
// OCI image manifest whose config and descriptor carry Platforms[i]. It
// returns the index.
func PushRandomIndex(t testing.TB, ref string, platforms int) v1.ImageIndex {
	t.Helper()
	if platforms < 1 || platforms > len(Platforms) {
		t.Fatalf("testkit: PushRandomIndex: platforms must be 1..%d, got %d", len(Platforms), platforms)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms[:platforms] {
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		for range randomLayers {
			l, err := random.Layer(randomLayerBytes, types.OCILayer)
			if err != nil {
				t.Fatalf("testkit: random layer: %v", err)
			}
			if img, err = mutate.AppendLayers(img, l); err != nil {
				t.Fatalf("testkit: append layer: %v", err)
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("testkit: config file: %v", err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatalf("testkit: set config file: %v", err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	PushIndex(t, ref, idx)
	return idx
}

// PushIndex pushes idx and its children to ref with remote.WriteIndex.
func PushIndex(t testing.TB, ref string, idx v1.ImageIndex) {
	t.Helper()
	if err := remote.WriteIndex(parseRef(t, ref), idx, RemoteOptions(t)...); err != nil {
		t.Fatalf("testkit: push index to %s: %v", ref, err)
	}
}

// Digest HEADs ref and returns its manifest digest ("sha256:…").
// Distribution sends a "pull" notification for this HEAD.
func Digest(t testing.TB, ref string) string {
	t.Helper()
	desc, err := remote.Head(parseRef(t, ref), RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("testkit: HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

// TryDigest is Digest for an image that may be absent: it returns the
// registry's error instead of failing the test.
func TryDigest(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(r, remote.WithAuthFromKeychain(keychain{}))
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}
