package promoter_test

import (
	"crypto/ecdsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/verify"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// signedRule promotes apps/** from dev to tst when the image is signed
// with cosign by the key in the file %s (its policy is named "signed").
const signedRule = `  - name: dev-to-tst
    from: dev
    to: tst
    repositories: ["apps/**"]
    verify: [ { name: signed, cosign: { keyFile: %q } } ]%s`

// supplyChain is a promoter environment whose rule requires a cosign
// signature by key, with Slipway's summary key.
type supplyChain struct {
	*env
	key        *ecdsa.PrivateKey
	summaryKey *verify.SummaryKey
}

// newSupplyChain configures dev → tst with signedRule; tstHost may be a
// proxy in front of tst's registry; extra is YAML appended to the rule.
func newSupplyChain(t *testing.T, devHost, tstHost, extra string) *supplyChain {
	t.Helper()
	key, _ := testkit.GenerateKey(t)
	_, pub := testkit.WriteKeyFiles(t, key)
	s := &supplyChain{key: key}
	s.env = newEnv(t, devHost, tstHost, fmt.Sprintf(signedRule, pub, extra), "")
	summary, _ := testkit.GenerateKey(t)
	keyFile, pubFile := testkit.WriteKeyFiles(t, summary)
	s.cfg.Verification.Summary = config.SummaryKey{KeyFile: keyFile}
	k, err := verify.LoadSummaryKey(config.SummaryKey{PublicKeyFile: pubFile})
	if err != nil {
		t.Fatal(err)
	}
	s.summaryKey = k
	return s
}

// image pushes a random image to dev and returns its digest reference.
func image(t *testing.T, host, repoTag string) name.Digest {
	t.Helper()
	testkit.PushRandomImage(t, host+"/"+repoTag)
	d, err := name.NewDigest(host+"/"+strings.Split(repoTag, ":")[0]+"@"+testkit.Digest(t, host+"/"+repoTag), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// summaries are the verification summaries attached to ref.
func summaries(t *testing.T, ref name.Digest) []string {
	t.Helper()
	idx, err := remote.Referrers(ref, testkit.RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("referrers of %s: %v", ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range m.Manifests {
		if d.ArtifactType == verify.BundleMediaType && d.Annotations[verify.BundlePredicateAnnot] == verify.VSAPredicateType {
			out = append(out, d.Digest.String())
		}
	}
	return out
}

// A signed image is promoted, in cosign's tag scheme and as a Sigstore
// bundle referrer alike: image.promoted names the policy and the key that
// signed, and the promoted digest in tst carries a summary signed with
// Slipway's key that lists the policy.
func TestSignedImageIsPromotedWithASummary(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	s := newSupplyChain(t, dev.Host, tst.Host, "")
	s.start(promoter.New())
	tagSigned := image(t, dev.Host, "apps/web:1.0.0")
	testkit.CosignSignTag(t, tagSigned, s.key)
	bundleSigned := image(t, dev.Host, "apps/api:1.0.0")
	testkit.CosignSignBundle(t, bundleSigned, s.key)
	s.pushed("apps/web", "1.0.0", tagSigned.DigestStr(), time.Now())
	s.pushed("apps/api", "1.0.0", bundleSigned.DigestStr(), time.Now())

	promoted := s.seen.Wait(t, events.TypeImagePromoted, 2)
	for _, p := range promoted {
		d, _ := events.DataAs[events.ImagePromoted](p)
		if len(d.Verified) != 1 || d.Verified[0].Policy != "signed" || d.Verified[0].Kind != "cosign" || !strings.HasPrefix(d.Verified[0].Identity, "sha256:") {
			t.Errorf("%s: verified %+v, want policy signed passed by the key's fingerprint", d.To.Repository, d.Verified)
		}
		target, err := name.NewDigest(tst.Host+"/"+d.To.Repository+"@"+d.To.Digest, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := verify.CheckSummary(t.Context(), verify.Image{Ref: target, Options: testkit.RemoteOptions(t)}, s.summaryKey)
		if err != nil {
			t.Errorf("%s: the promoted image's summary: %v", d.To.Repository, err)
			continue
		}
		if sum.Digest != d.SummaryDigest || len(sum.Policies) != 1 || sum.Policies[0] != d.Verified[0] {
			t.Errorf("%s: summary %s listing %+v, image.promoted names summary %s and %+v", d.To.Repository, sum.Digest, sum.Policies, d.SummaryDigest, d.Verified)
		}
	}
	if n := len(s.seen.Of(events.TypePromotionFailed)); n != 0 {
		t.Errorf("%d promotion.failed", n)
	}
}

// An image signed by another key, one with the right key's signature over
// another image, and an unsigned one are refused: promotion.failed, final,
// names the policy and says why, and tst's registry is asked nothing.
func TestImageFailingVerificationIsNotCopied(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	host, requests := counting(t, tst)
	s := newSupplyChain(t, dev.Host, host, "")
	s.start(promoter.New())

	other, _ := testkit.GenerateKey(t)
	byOther := image(t, dev.Host, "apps/web:1.0.0")
	testkit.CosignSignBundle(t, byOther, other)
	elsewhere := image(t, dev.Host, "apps/web:2.0.0")
	overOther := image(t, dev.Host, "apps/web:3.0.0")
	testkit.CosignSignTag(t, overOther, s.key, testkit.OverDigest(elsewhere.DigestStr()))
	unsigned := image(t, dev.Host, "apps/web:4.0.0")
	for tag, d := range map[string]name.Digest{"1.0.0": byOther, "3.0.0": overOther, "4.0.0": unsigned} {
		s.pushed("apps/web", tag, d.DigestStr(), time.Now())
	}

	failed := s.seen.Wait(t, events.TypePromotionFailed, 3)
	s.drained()
	for _, f := range failed {
		d, _ := events.DataAs[events.PromotionFailed](f)
		if d.Retryable || d.Policy != "signed" || !strings.Contains(d.Error, "verification policy signed") {
			t.Errorf("%s: promotion.failed %+v, want a final failure of policy signed", d.From.Tag, d)
		}
		t.Logf("%s: %s", d.From.Tag, d.Error)
	}
	if n := len(s.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Errorf("%d image.promoted", n)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("tst's registry got %d requests for images that failed verification", n)
	}
}

// A rule with an approval verifies before it asks: nobody is asked to
// approve an image that could never be promoted. A signed image is asked
// about as before.
func TestNoApprovalIsAskedForAnImageFailingVerification(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	s := newSupplyChain(t, dev.Host, tst.Host, "\n    approval: { required: true, approvers: [rm] }")
	s.start(promoter.New())
	unsigned := image(t, dev.Host, "apps/web:1.0.0")
	signed := image(t, dev.Host, "apps/web:2.0.0")
	testkit.CosignSignTag(t, signed, s.key)
	s.pushed("apps/web", "1.0.0", unsigned.DigestStr(), time.Now())
	s.pushed("apps/web", "2.0.0", signed.DigestStr(), time.Now())

	f := s.seen.Wait(t, events.TypePromotionFailed, 1)
	s.seen.Wait(t, events.TypeApprovalRequested, 1)
	s.drained()
	d, _ := events.DataAs[events.PromotionFailed](f[0])
	if d.From.Tag != "1.0.0" || d.Policy != "signed" || d.Retryable {
		t.Errorf("promotion.failed %+v, want the unsigned 1.0.0 refused by policy signed", d)
	}
	for _, r := range s.seen.Of(events.TypeApprovalRequested) {
		a, _ := events.DataAs[events.ApprovalRequested](r)
		if a.From.Digest != signed.DigestStr() {
			t.Errorf("approval asked for %s, which fails verification", a.From.String())
		}
	}
}

// crashAfterSummary is a proxy in front of tst's registry that, once the
// promoted tag is written, lets the summary reach the registry and then
// crashes the promoter before it hears the answer. The registry has no
// referrers API: a referrer is attached once the referrers tag
// (sha256-<hex>) lists it, the last write of attaching the summary.
type crashAfterSummary struct {
	proxy   *httputil.ReverseProxy
	tag     string
	tagged  atomic.Bool
	crashed atomic.Bool
	mu      sync.Mutex
	crash   func()
}

func (c *crashAfterSummary) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isManifestPut := r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
	if isManifestPut && strings.HasSuffix(r.URL.Path, "/manifests/"+c.tag) {
		c.tagged.Store(true)
	}
	summaryPut := isManifestPut && strings.Contains(r.URL.Path, "/manifests/sha256-") && c.tagged.Load() && !c.crashed.Load()
	c.proxy.ServeHTTP(w, r)
	if summaryPut && c.crashed.CompareAndSwap(false, true) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.crash()
	}
}

// A promoter that ends after the summary reached tst's registry but before
// it announced the promotion leaves the event unacknowledged; the next one
// finds the image copied and the summary attached, and announces the
// promotion naming that summary: there is one summary, not two.
func TestRedeliveryAfterACrashAttachesOneSummary(t *testing.T) {
	dev, tst := testkit.NewRegistry(t, testkit.RegistryOptions{}), testkit.NewRegistry(t, testkit.RegistryOptions{})
	u, _ := url.Parse(tst.URL)
	front := &crashAfterSummary{proxy: httputil.NewSingleHostReverseProxy(u), tag: "1.0.0"}
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	s := newSupplyChain(t, dev.Host, strings.TrimPrefix(srv.URL, "http://"), "")
	signed := image(t, dev.Host, "apps/web:1.0.0")
	testkit.CosignSignBundle(t, signed, s.key)

	front.mu.Lock()
	front.crash = s.run(promoter.New())
	front.mu.Unlock()
	s.pushed("apps/web", "1.0.0", signed.DigestStr(), time.Now())
	testkit.WaitFor(t, "the promoter to crash after attaching the summary", front.crashed.Load)
	target, err := name.NewDigest(tst.Host+"/apps/web@"+signed.DigestStr(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if got := summaries(t, target); len(got) != 1 {
		t.Fatalf("after the crash tst holds %d summaries, want the 1 the crashed promoter attached", len(got))
	}
	if n := len(s.seen.Of(events.TypeImagePromoted)); n != 0 {
		t.Fatalf("the crashed promoter announced %d promotions", n)
	}

	s.run(promoter.New())
	p := s.seen.Wait(t, events.TypeImagePromoted, 1)
	s.drained()
	d, _ := events.DataAs[events.ImagePromoted](p[0])
	got := summaries(t, target)
	if len(got) != 1 || got[0] != d.SummaryDigest {
		t.Errorf("tst holds summaries %v, image.promoted names %s; want exactly that one", got, d.SummaryDigest)
	}
}
