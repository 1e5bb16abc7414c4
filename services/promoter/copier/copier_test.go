package copier

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

const spdxType = "application/spdx+json"

// newCopier is New with a short back-off, so that retry tests are quick.
func newCopier(opts Options) *Copier {
	c := New(opts)
	c.backoff = 5 * time.Millisecond
	return c
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// blobBytes is the size of img's config and layers, what a copy uploads.
func blobBytes(t *testing.T, img v1.Image) (blobs int, size int64) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	size = m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return len(m.Layers) + 1, size
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rawManifest(t *testing.T, ref string) []byte {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r, testkit.RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	return desc.Manifest
}

func TestCopySingleImage(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dstReg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := newProxy(t, dstReg, nil)
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	wantBlobs, wantBytes := blobBytes(t, img)

	c := newCopier(Options{})
	req := Request{
		From: Ref{Registry: src.Host, Repository: "apps/web", Tag: "1.0.0", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
	}
	res, err := c.Copy(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Digest: d, BlobsCopied: wantBlobs, BytesCopied: wantBytes}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	if got := testkit.Digest(t, dstReg.Host+"/apps/web:1.0.0"); got != d {
		t.Errorf("target tag at %s, want %s", got, d)
	}
	if a, b := rawManifest(t, src.Host+"/apps/web@"+d), rawManifest(t, dstReg.Host+"/apps/web@"+d); !bytes.Equal(a, b) {
		t.Errorf("target manifest differs from the source's:\n%s\n%s", a, b)
	}
	// The tag comes last: no manifest PUT by tag before the one by digest.
	var puts []string
	for _, r := range dst.requests() {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") {
			puts = append(puts, r.Path[strings.LastIndex(r.Path, "/")+1:])
		}
	}
	if !slices.Equal(puts, []string{d, "1.0.0"}) {
		t.Errorf("manifest PUTs %v, want by digest then by tag", puts)
	}

	before := len(dst.requests())
	res, err = c.Copy(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Digest: d, AlreadyThere: true}); res != want {
		t.Errorf("second copy: result %+v, want %+v", res, want)
	}
	for _, r := range dst.requests()[before:] {
		if (r.Method != http.MethodGet || r.Path != "/v2/") && (r.Method != http.MethodHead || !strings.Contains(r.Path, "/manifests/")) {
			t.Errorf("second copy sent %s %s; want only the ping and a HEAD of the tag", r.Method, r.Path)
		}
	}
}

func TestCopySkipsBlobsTheTargetHas(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	// One layer is already in the target repository (say, a shared base).
	if err := remote.WriteLayer(mustRepo(t, dst.Host+"/apps/web"), layers[0], testkit.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	size, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}
	wantBlobs, wantBytes := blobBytes(t, img)

	res, err := newCopier(Options{}).Copy(t.Context(), Request{
		From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Digest: d, BlobsCopied: wantBlobs - 1, BlobsSkipped: 1, BytesCopied: wantBytes - size}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

func TestCopyIndexAllPlatforms(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	idx := testkit.PushRandomIndex(t, src.Host+"/apps/multi:2.0.0", 2)
	d := digestOf(t, idx)

	res, err := newCopier(Options{}).Copy(t.Context(), Request{
		From: Ref{Registry: src.Host, Repository: "apps/multi", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/multi", Tag: "2.0.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := testkit.Digest(t, dst.Host+"/apps/multi:2.0.0"); got != d {
		t.Errorf("target index %s, want %s", got, d)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d children, want 2", len(im.Manifests))
	}
	blobs := 0
	for _, child := range im.Manifests {
		// By digest: go-containerregistry checks the digest of what it reads.
		got := testkit.Digest(t, dst.Host+"/apps/multi@"+child.Digest.String())
		if got != child.Digest.String() {
			t.Errorf("child %s: target has %s", child.Digest, got)
		}
		img, err := idx.Image(child.Digest)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := blobBytes(t, img)
		blobs += n
	}
	if res.BlobsCopied != blobs || res.BlobsSkipped != 0 || res.AlreadyThere {
		t.Errorf("result %+v, want %d blobs copied", res, blobs)
	}
}

func TestCopyReferrers(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	subject := src.Host + "/apps/web@" + d
	sig := testkit.PushCosignSignature(t, subject)
	sbom := testkit.PushReferrer(t, subject, spdxType, spdxType, []byte(`{"spdxVersion":"SPDX-2.3"}`))

	c := newCopier(Options{})
	req := Request{
		From:             Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:               Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
		CopyReferrers:    true,
		RequireReferrers: []string{CosignSignatureType, spdxType},
	}
	res, err := c.Copy(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.ReferrersCopied != 2 {
		t.Errorf("ReferrersCopied %d, want 2", res.ReferrersCopied)
	}
	sigTag := cosignTag(d, "sig")
	if got := testkit.Digest(t, dst.Host+"/apps/web:"+sigTag); got != sig {
		t.Errorf("target %s at %s, want %s", sigTag, got, sig)
	}
	if got := testkit.Digest(t, dst.Host+"/apps/web@"+sbom); got != sbom {
		t.Errorf("target SBOM %s, want %s", got, sbom)
	}
	if types := referrerTypes(t, dst.Host+"/apps/web@"+d); types[sbom] != spdxType {
		t.Errorf("target referrers %v, want %s with artifactType %s", types, sbom, spdxType)
	}
	if got := testkit.Digest(t, dst.Host+"/apps/web:1.0.0"); got != d {
		t.Errorf("target tag at %s, want %s", got, d)
	}

	res, err = c.Copy(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Digest: d, AlreadyThere: true}); res != want {
		t.Errorf("second copy: result %+v, want %+v", res, want)
	}

	// An attestation attached after the promotion follows on the next one.
	att := testkit.PushReferrer(t, subject, "application/vnd.in-toto+json", "application/vnd.in-toto+json", []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	res, err = c.Copy(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.AlreadyThere || res.ReferrersCopied != 1 {
		t.Errorf("after a new attestation: result %+v, want AlreadyThere and 1 referrer copied", res)
	}
	if types := referrerTypes(t, dst.Host+"/apps/web@"+d); len(types) != 2 || types[att] == "" {
		t.Errorf("target referrers %v, want the SBOM and %s", types, att)
	}
}

// referrerTypes lists the referrers of ref (a digest reference) as
// digest → artifactType.
func referrerTypes(t *testing.T, ref string) map[string]string {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d, testkit.RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("referrers of %s: %v", ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range m.Manifests {
		out[d.Digest.String()] = d.ArtifactType
	}
	return out
}

func TestRequireReferrersMissing(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dstReg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := newProxy(t, dstReg, nil)
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	// Signed, but no SBOM: only the SBOM is reported missing.
	testkit.PushCosignSignature(t, src.Host+"/apps/web@"+d)

	_, err := newCopier(Options{}).Copy(t.Context(), Request{
		From:             Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:               Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
		CopyReferrers:    true,
		RequireReferrers: []string{CosignSignatureType, CosignSBOMType},
	})
	var missing *MissingReferrersError
	if !errors.As(err, &missing) {
		t.Fatalf("error %v, want a *MissingReferrersError", err)
	}
	if !slices.Equal(missing.Missing, []string{CosignSBOMType}) || !strings.Contains(missing.Image, d) {
		t.Errorf("missing %+v, want the SBOM type of %s", missing, d)
	}
	if Retryable(err) {
		t.Error("Retryable(MissingReferrersError) = true")
	}
	if reqs := dst.requests(); len(reqs) != 0 {
		t.Errorf("the target got %d requests, want none: %+v", len(reqs), reqs)
	}
	tags, err := remote.List(mustRepo(t, dstReg.Host+"/apps/web"), testkit.RemoteOptions(t)...)
	if len(tags) != 0 || !isNotFound(err) {
		t.Errorf("target tags %v (%v), want an unknown repository", tags, err)
	}
}

func TestCopyMountsWithinRegistry(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	p := newProxy(t, reg, nil)
	img := testkit.PushRandomImage(t, reg.Host+"/dev/web:1.0.0")
	d := digestOf(t, img)
	blobs, _ := blobBytes(t, img)

	res, err := newCopier(Options{}).Copy(t.Context(), Request{
		From: Ref{Registry: p.Host, Repository: "dev/web", Digest: d},
		To:   Ref{Registry: p.Host, Repository: "tst/web", Tag: "1.0.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Digest: d, BlobsCopied: blobs, BlobsMounted: blobs}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	mounts := 0
	for _, r := range p.requests() {
		switch {
		case r.Method == http.MethodPatch || r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/"):
			t.Errorf("blob upload %s %s; want mounts only", r.Method, r.Path)
		case r.Method == http.MethodPost && strings.Contains(r.Query, "mount=") && strings.Contains(r.Query, "from=dev%2Fweb") && r.Status == http.StatusCreated:
			mounts++
		}
	}
	if mounts != blobs {
		t.Errorf("%d mounts answered 201, want %d", mounts, blobs)
	}
	if got := testkit.Digest(t, reg.Host+"/tst/web:1.0.0"); got != d {
		t.Errorf("target tag at %s, want %s", got, d)
	}
}

func TestCopyRetriesWhileTargetIsDown(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dstReg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	const down = 3
	dst := newProxy(t, dstReg, func(n int, _ *http.Request) int {
		if n <= down {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)

	res, err := newCopier(Options{Retries: 5}).Copy(t.Context(), Request{
		From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := testkit.Digest(t, dstReg.Host+"/apps/web:1.0.0"); got != d || res.Digest != d {
		t.Errorf("target tag at %s (result %+v), want %s", got, res, d)
	}
	if reqs := dst.requests(); len(reqs) <= down || reqs[down-1].Status != http.StatusServiceUnavailable {
		t.Errorf("requests %+v, want %d refused first", reqs, down)
	}
}

func TestCopyRetriesFailedUploads(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dstReg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	// The first blob upload and the first manifest write fail.
	var patched, put bool
	dst := newProxy(t, dstReg, func(_ int, r *http.Request) int {
		switch {
		case r.Method == http.MethodPatch && !patched:
			patched = true
			return http.StatusBadGateway
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && !put:
			put = true
			return http.StatusInternalServerError
		}
		return 0
	})
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	wantBlobs, wantBytes := blobBytes(t, img)

	res, err := newCopier(Options{}).Copy(t.Context(), Request{
		From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !patched || !put {
		t.Fatalf("the proxy refused no upload (PATCH %v, manifest PUT %v)", patched, put)
	}
	// A refused upload may have been sent (in part) before the answer.
	if res.BlobsCopied != wantBlobs || res.BlobsSkipped != 0 || res.BytesCopied < wantBytes {
		t.Errorf("result %+v, want %d blobs and at least %d bytes copied", res, wantBlobs, wantBytes)
	}
	if got := testkit.Digest(t, dstReg.Host+"/apps/web:1.0.0"); got != d {
		t.Errorf("target tag at %s, want %s", got, d)
	}
}

func TestCopyGivesUpRetryably(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dstReg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := newProxy(t, dstReg, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)

	const retries = 3
	_, err := newCopier(Options{Retries: retries}).Copy(t.Context(), Request{
		From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
	})
	if err == nil {
		t.Fatal("copy to a registry that answers 503 succeeded")
	}
	if !Retryable(err) {
		t.Errorf("Retryable(%v) = false", err)
	}
	if !strings.Contains(err.Error(), dst.Host) {
		t.Errorf("error %q does not name the target registry", err)
	}
	if n := len(dst.requests()); n != retries {
		t.Errorf("the target got %d requests, want %d attempts", n, retries)
	}
}

func TestCopyCredentials(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dstReg := testkit.NewRegistry(t, testkit.RegistryOptions{Username: "promoter", Password: "s3cret-pw"})
	dst := newProxy(t, dstReg, nil)
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	req := Request{
		From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d},
		To:   Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"},
	}

	t.Run("wrong", func(t *testing.T) {
		const pw = "wrong-pw-1234"
		_, err := newCopier(Options{Registries: []config.Registry{{Host: dst.Host, Insecure: true, Username: "promoter", Password: pw}}}).Copy(t.Context(), req)
		if err == nil {
			t.Fatal("copy with a wrong password succeeded")
		}
		if Retryable(err) {
			t.Errorf("Retryable(%v) = true", err)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error %q shows the password", err)
		}
		if n := len(dst.requests()); n > 3 {
			t.Errorf("the target got %d requests, want at most 3 (no retries)", n)
		}
	})
	t.Run("right", func(t *testing.T) {
		_, err := newCopier(Options{Registries: []config.Registry{{Host: dst.Host, Insecure: true, Username: "promoter", Password: "s3cret-pw"}}}).Copy(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := testkit.Digest(t, dstReg.Host+"/apps/web:1.0.0"); got != d {
			t.Errorf("target tag at %s, want %s", got, d)
		}
	})
}

func TestCopyBadRequests(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := testkit.PushRandomImage(t, src.Host+"/apps/web:1.0.0")
	d := digestOf(t, img)
	absent := "sha256:" + strings.Repeat("0", 64)
	for name, req := range map[string]Request{
		"no digest":      {From: Ref{Registry: src.Host, Repository: "apps/web", Tag: "1.0.0"}, To: Ref{Registry: dst.Host, Repository: "apps/web"}},
		"bad digest":     {From: Ref{Registry: src.Host, Repository: "apps/web", Digest: "sha256:abc"}, To: Ref{Registry: dst.Host, Repository: "apps/web"}},
		"other digest":   {From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d}, To: Ref{Registry: dst.Host, Repository: "apps/web", Digest: absent}},
		"no repository":  {From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d}, To: Ref{Registry: dst.Host}},
		"bad tag":        {From: Ref{Registry: src.Host, Repository: "apps/web", Digest: d}, To: Ref{Registry: dst.Host, Repository: "apps/web", Tag: "no tag"}},
		"absent digest":  {From: Ref{Registry: src.Host, Repository: "apps/web", Digest: absent}, To: Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"}},
		"absent repo":    {From: Ref{Registry: src.Host, Repository: "apps/nothing", Digest: d}, To: Ref{Registry: dst.Host, Repository: "apps/web", Tag: "1.0.0"}},
		"bad repository": {From: Ref{Registry: src.Host, Repository: "Apps/Web", Digest: d}, To: Ref{Registry: dst.Host, Repository: "apps/web"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newCopier(Options{}).Copy(t.Context(), req)
			if err == nil {
				t.Fatal("no error")
			}
			if Retryable(err) {
				t.Errorf("Retryable(%v) = true", err)
			}
		})
	}
}

func TestCopyConcurrently(t *testing.T) {
	src := testkit.NewRegistry(t, testkit.RegistryOptions{})
	dst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	c := newCopier(Options{})
	var wg sync.WaitGroup
	for i := range 4 {
		repo := fmt.Sprintf("apps/svc%d", i)
		d := digestOf(t, testkit.PushRandomImage(t, src.Host+"/"+repo+":1.0.0"))
		wg.Go(func() {
			res, err := c.Copy(t.Context(), Request{
				From: Ref{Registry: src.Host, Repository: repo, Digest: d},
				To:   Ref{Registry: dst.Host, Repository: repo, Tag: "1.0.0"},
			})
			if err != nil {
				t.Error(err)
				return
			}
			// Counts are per copy, not shared between concurrent ones.
			if res.BlobsCopied != 3 || res.BlobsSkipped != 0 {
				t.Errorf("%s: result %+v, want 3 blobs copied", repo, res)
			}
		})
	}
	wg.Wait()
}

func TestRetryable(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("copy a to b: %w", &transport.Error{StatusCode: code})
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{status(408), true},
		{status(429), true},
		{status(500), true},
		{status(503), true},
		{status(425), true}, // the one HTTP retry rule: not acted on
		{status(501), false},
		{status(505), false},
		{status(401), false},
		{status(403), false},
		{status(404), false},
		{status(400), false},
		{&MissingReferrersError{Image: "r/x@sha256:1", Missing: []string{CosignSignatureType}}, false},
		{badInput("no digest"), false},
		{errors.New(`manifest digest: "sha256:1" does not match requested digest: "sha256:2"`), false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("x: %w", context.Canceled), true},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{&net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}, false},
		{&net.DNSError{Err: "server misbehaving", Name: "registry.example", IsTemporary: true}, true},
		{fmt.Errorf("x: %w", x509.UnknownAuthorityError{}), false},
		// A registry gone mid-upload: net/http's unexported errServerClosedIdle.
		{fmt.Errorf("write: %w", &url.Error{Op: "Put", URL: "http://r/v2/a/blobs/uploads/1", Err: errors.New("http: server closed idle connection")}), true},
		{&url.Error{Op: "Get", URL: "https://nowhere.invalid/v2/", Err: &net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}}, false},
		{&url.Error{Op: "Get", URL: "https://r/v2/", Err: x509.UnknownAuthorityError{}}, false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBlobDigest(t *testing.T) {
	for p, want := range map[string]string{
		"/v2/apps/web/blobs/sha256:ab":          "sha256:ab",
		"/v2/blobs/blobs/blobs/sha256:ab":       "sha256:ab",
		"/v2/apps/web/blobs/uploads/":           "",
		"/v2/apps/web/blobs/uploads/123-456":    "",
		"/v2/apps/web/manifests/sha256:ab":      "",
		"/other/apps/web/blobs/sha256:ab":       "",
		"/v2/apps/blobs/uploads/blobs/sha256:x": "sha256:x",
	} {
		if got := blobDigest(p); got != want {
			t.Errorf("blobDigest(%q) = %q, want %q", p, got, want)
		}
	}
}
