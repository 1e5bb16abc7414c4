package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

const (
	alice  = "alice@example.com"
	issuer = "https://accounts.example"
)

// signers attach a cosign signature in one of the two forms.
var signers = []struct {
	form string
	sign func(t testing.TB, ref name.Digest, key crypto.Signer, opts ...testkit.SignOption) string
}{
	{"tag", testkit.CosignSignTag},
	{"referrer", testkit.CosignSignBundle},
}

func fingerprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mustBuild(t *testing.T, p config.VerifyPolicy) Policy {
	t.Helper()
	pols, err := Build([]config.VerifyPolicy{p})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return pols[0]
}

// refusedFor checks that err is a final failure saying every one of words.
func refusedFor(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified, want a refusal saying %q", words)
	}
	reason := failureReason(t, err)
	for _, w := range words {
		if !strings.Contains(reason, w) {
			t.Errorf("refusal %q does not say %q", reason, w)
		}
	}
}

func keyed(t *testing.T, pemKey []byte) Policy {
	t.Helper()
	return mustBuild(t, config.VerifyPolicy{Name: "signed", Cosign: &config.CosignPolicy{Key: string(pemKey)}})
}

func TestCosignKeyedAcceptsSignatureByTheKeyWithItsFingerprint(t *testing.T) {
	for _, s := range signers {
		t.Run(s.form, func(t *testing.T) {
			reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
			img := pushed(t, reg, "apps/web")
			key, pub := testkit.GenerateKey(t)
			s.sign(t, img.Ref, key)
			got, err := keyed(t, pub).Verify(t.Context(), img)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			want := events.Verified{Policy: "signed", Kind: "cosign", Identity: fingerprint(t, key.Public())}
			if got != want {
				t.Errorf("verified = %+v, want %+v", got, want)
			}
		})
	}
}

func TestCosignKeyedRefusesSignatureByAnotherKey(t *testing.T) {
	for _, s := range signers {
		t.Run(s.form, func(t *testing.T) {
			reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
			img := pushed(t, reg, "apps/web")
			other, _ := testkit.GenerateKey(t)
			another, _ := testkit.GenerateKey(t)
			s.sign(t, img.Ref, other)
			s.sign(t, img.Ref, another)
			key, pub := testkit.GenerateKey(t)
			_, err := keyed(t, pub).Verify(t.Context(), img)
			refusedFor(t, err, "2 signatures found, none by key "+fingerprint(t, key.Public()))
		})
	}
}

func TestCosignKeyedRefusesSignatureByTheKeyOverAnotherImage(t *testing.T) {
	for _, s := range signers {
		t.Run(s.form, func(t *testing.T) {
			reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
			img := pushed(t, reg, "apps/web")
			elsewhere := pushed(t, reg, "apps/api")
			key, pub := testkit.GenerateKey(t)
			s.sign(t, img.Ref, key, testkit.OverDigest(elsewhere.Ref.DigestStr()))
			_, err := keyed(t, pub).Verify(t.Context(), img)
			refusedFor(t, err, "the signature by key "+fingerprint(t, key.Public())+" is over another image ("+elsewhere.Ref.DigestStr()+")")
		})
	}
}

func TestCosignRefusesUnsignedImageNamingWhereItLooked(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/web")
	// Another image's signature is not this one's.
	other := pushed(t, reg, "apps/web2")
	key, pub := testkit.GenerateKey(t)
	testkit.CosignSignTag(t, other.Ref, key)
	_, err := keyed(t, pub).Verify(t.Context(), img)
	refusedFor(t, err, "unsigned: no cosign signature found", strings.Replace(img.Ref.DigestStr(), ":", "-", 1)+".sig", "referrers")
}

func TestCosignIgnoresAttestationsWhenLookingForSignatures(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/web")
	key, pub := testkit.GenerateKey(t)
	stmt := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"` +
		strings.TrimPrefix(img.Ref.DigestStr(), "sha256:") + `"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`
	testkit.AttestBundle(t, img.Ref, []byte(stmt), key)
	_, err := keyed(t, pub).Verify(t.Context(), img)
	refusedFor(t, err, "unsigned")
}

func TestCosignRegistryDownIsRetryableNotARefusal(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/web")
	_, pub := testkit.GenerateKey(t)
	reg.Stop()
	_, err := keyed(t, pub).Verify(t.Context(), img)
	if err == nil || IsFailure(err) {
		t.Fatalf("err = %v, want a plain (retryable) error", err)
	}
}

func keylessPolicy(t *testing.T, trustedRoot, subject, subjectRegex string) Policy {
	t.Helper()
	return mustBuild(t, config.VerifyPolicy{Name: "ci", Cosign: &config.CosignPolicy{Keyless: &config.Keyless{
		TrustedRoot: trustedRoot, Issuer: issuer, Subject: subject, SubjectRegex: subjectRegex,
	}}})
}

func TestCosignKeylessAcceptsTheIdentityFromTheIssuer(t *testing.T) {
	ss := testkit.NewSigstore(t)
	tr := ss.TrustedRootJSON(t)
	for _, s := range signers {
		t.Run(s.form, func(t *testing.T) {
			reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
			img := pushed(t, reg, "apps/web")
			s.sign(t, img.Ref, ss.Identity(t, alice, issuer))
			got, err := keylessPolicy(t, tr, alice, "").Verify(t.Context(), img)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			want := events.Verified{Policy: "ci", Kind: "cosign", Identity: alice, Issuer: issuer}
			if got != want {
				t.Errorf("verified = %+v, want %+v", got, want)
			}
		})
	}
}

func TestCosignKeylessSubjectRegex(t *testing.T) {
	ss := testkit.NewSigstore(t)
	tr := ss.TrustedRootJSON(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/web")
	ss.SignKeyless(t, img.Ref, alice, issuer)
	if _, err := keylessPolicy(t, tr, "", `^.*@example\.com$`).Verify(t.Context(), img); err != nil {
		t.Errorf("subject matching the regex: %v", err)
	}
	_, err := keylessPolicy(t, tr, "", `^.*@example\.org$`).Verify(t.Context(), img)
	refusedFor(t, err, "certificate for "+alice+" issued by "+issuer, `want subject matching ^.*@example\.org$`)
}

func TestCosignKeylessRefusesAnotherSubjectOrIssuer(t *testing.T) {
	ss := testkit.NewSigstore(t)
	tr := ss.TrustedRootJSON(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})

	img := pushed(t, reg, "apps/web")
	ss.SignKeyless(t, img.Ref, "mallory@example.com", issuer)
	_, err := keylessPolicy(t, tr, alice, "").Verify(t.Context(), img)
	refusedFor(t, err, "certificate for mallory@example.com issued by "+issuer, "want subject "+alice)

	img = pushed(t, reg, "apps/api")
	ss.SignKeyless(t, img.Ref, alice, "https://elsewhere.example")
	_, err = keylessPolicy(t, tr, alice, "").Verify(t.Context(), img)
	refusedFor(t, err, "certificate for "+alice+" issued by https://elsewhere.example", "issued by "+issuer)
}

func TestCosignKeylessRefusesCertificateFromAnotherCA(t *testing.T) {
	trusted := testkit.NewSigstore(t)
	other := testkit.NewSigstore(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/web")
	other.SignKeyless(t, img.Ref, alice, issuer)
	_, err := keylessPolicy(t, trusted.TrustedRootJSON(t), alice, "").Verify(t.Context(), img)
	refusedFor(t, err, "1 signature found, none verifies against the trusted root")
}

func TestCosignKeylessRefusesSignatureOverAnotherImage(t *testing.T) {
	ss := testkit.NewSigstore(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/web")
	elsewhere := pushed(t, reg, "apps/api")
	ss.SignKeyless(t, img.Ref, alice, issuer, testkit.OverDigest(elsewhere.Ref.DigestStr()))
	_, err := keylessPolicy(t, ss.TrustedRootJSON(t), alice, "").Verify(t.Context(), img)
	refusedFor(t, err, "over another image ("+elsewhere.Ref.DigestStr()+")")
}

func TestCosignBuildNamesWhatIsWrong(t *testing.T) {
	_, pub := testkit.GenerateKey(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(keyFile, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	tr := testkit.NewSigstore(t).TrustedRootJSON(t)
	cases := []struct {
		name string
		pol  config.CosignPolicy
		want string
	}{
		{"bad PEM", config.CosignPolicy{Key: "not a key"}, "no PEM block"},
		{"private key", config.CosignPolicy{Key: "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"}, `PEM block is "EC PRIVATE KEY", want PUBLIC KEY`},
		{"missing key file", config.CosignPolicy{KeyFile: filepath.Join(dir, "absent.pub")}, "absent.pub"},
		{"key and keyless", config.CosignPolicy{KeyFile: keyFile, Keyless: &config.Keyless{TrustedRoot: tr, Issuer: issuer, Subject: alice}}, "exactly one of key, keyFile and keyless"},
		{"missing trusted root", config.CosignPolicy{Keyless: &config.Keyless{TrustedRoot: filepath.Join(dir, "absent.json"), Issuer: issuer, Subject: alice}}, "absent.json"},
		{"subject and regex", config.CosignPolicy{Keyless: &config.Keyless{TrustedRoot: tr, Issuer: issuer, Subject: alice, SubjectRegex: ".*"}}, "exactly one of subject and subjectRegex"},
		{"bad regex", config.CosignPolicy{Keyless: &config.Keyless{TrustedRoot: tr, Issuer: issuer, SubjectRegex: "("}}, "subjectRegex"},
		{"no issuer", config.CosignPolicy{Keyless: &config.Keyless{TrustedRoot: tr, Subject: alice}}, "issuer is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build([]config.VerifyPolicy{{Cosign: &c.pol}})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "verify[0].cosign") {
				t.Errorf("err = %v, want verify[0].cosign: …%s…", err, c.want)
			}
		})
	}
	if _, err := Build([]config.VerifyPolicy{{Cosign: &config.CosignPolicy{KeyFile: keyFile}}}); err != nil {
		t.Errorf("a valid key file: %v", err)
	}
}
