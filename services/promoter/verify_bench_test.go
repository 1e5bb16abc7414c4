package promoter

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter/copier"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

// BenchmarkPromotionVerification promotes a signed image (4 layers of
// 2 MiB) from one in-process registry to a new repository of another, as
// the promoter does each time: verify the image against the rule's cosign
// policy in the source, copy it, attach the verification summary in the
// target. Each iteration's three steps are timed apart; the run reports
// their median and 99th percentile, so verification is seen next to the
// copy it guards. keyed is a public key; keyless a certificate of a test
// Fulcio CA with a signed timestamp, checked against a trusted root.
func BenchmarkPromotionVerification(b *testing.B) {
	for _, kind := range []string{"keyed", "keyless"} {
		b.Run(kind, func(b *testing.B) { benchPromotion(b, kind) })
	}
}

func benchPromotion(b *testing.B, kind string) {
	src := testkit.NewRegistry(b, testkit.RegistryOptions{})
	dst := testkit.NewRegistry(b, testkit.RegistryOptions{})
	img, err := random.Image(2<<20, 4)
	if err != nil {
		b.Fatal(err)
	}
	testkit.PushImage(b, src.Host+"/apps/web:1.0.0", img)
	ref, err := name.NewDigest(src.Host+"/apps/web@"+testkit.Digest(b, src.Host+"/apps/web:1.0.0"), name.Insecure)
	if err != nil {
		b.Fatal(err)
	}

	var policy config.VerifyPolicy
	switch kind {
	case "keyed":
		key, _ := testkit.GenerateKey(b)
		testkit.CosignSignTag(b, ref, key)
		_, pub := testkit.WriteKeyFiles(b, key)
		policy = config.VerifyPolicy{Name: "signed", Cosign: &config.CosignPolicy{KeyFile: pub}}
	case "keyless":
		ss := testkit.NewSigstore(b)
		const who, issuer = "ci@example.com", "https://issuer.example"
		ss.SignKeyless(b, ref, who, issuer)
		policy = config.VerifyPolicy{Name: "signed", Cosign: &config.CosignPolicy{Keyless: &config.Keyless{
			TrustedRoot: ss.TrustedRootJSON(b), Issuer: issuer, Subject: who}}}
	}
	summaryKey, _ := testkit.GenerateKey(b)
	keyFile, _ := testkit.WriteKeyFiles(b, summaryKey)
	regs := []config.Registry{{Host: src.Host, Insecure: true}, {Host: dst.Host, Insecure: true}}
	cfg := &config.Config{
		Promotions:   []config.Promotion{{Name: "bench", From: "dev", To: "tst", Verify: []config.VerifyPolicy{policy}}},
		Verification: config.Verification{Summary: config.SummaryKey{KeyFile: keyFile}},
	}
	ver, err := buildVerification(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	p := &promoter{copier: copier.New(copier.Options{Registries: regs}), verification: ver, metrics: m, now: time.Now}
	r := &rules.Rule{Name: "bench", From: "dev", To: "tst"}
	from := events.ImageRef{Environment: "dev", Registry: src.Host, Repository: "apps/web", Tag: "1.0.0", Digest: ref.DigestStr()}

	var verifying, copying, summarizing []time.Duration
	b.ResetTimer()
	for i := range b.N {
		to := events.ImageRef{Environment: "tst", Registry: dst.Host, Repository: fmt.Sprintf("apps/web-%d", i), Tag: "1.0.0", Digest: from.Digest}
		start := time.Now()
		passed, err := p.verify(b.Context(), r, from)
		if err != nil {
			b.Fatal(err)
		}
		verified := time.Now()
		if _, err := p.copier.Copy(b.Context(), copier.Request{
			From: copier.Ref{Registry: from.Registry, Repository: from.Repository, Digest: from.Digest},
			To:   copier.Ref{Registry: to.Registry, Repository: to.Repository, Tag: to.Tag}, CopyReferrers: true,
		}); err != nil {
			b.Fatal(err)
		}
		copied := time.Now()
		if _, err := p.summarize(b.Context(), to, passed); err != nil {
			b.Fatal(err)
		}
		verifying = append(verifying, verified.Sub(start))
		copying = append(copying, copied.Sub(verified))
		summarizing = append(summarizing, time.Since(copied))
	}
	b.StopTimer()
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"verify", verifying}, {"copy", copying}, {"summary", summarizing}} {
		b.ReportMetric(percentile(s.d, 50), s.name+"-p50-ms")
		b.ReportMetric(percentile(s.d, 99), s.name+"-p99-ms")
	}
}

// percentile is the p-th percentile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return float64(s[max(i-1, 0)].Microseconds()) / 1000
}
