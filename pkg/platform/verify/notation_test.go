package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/registry"
	"github.com/notaryproject/notation-go/signer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// notationCert is a certificate and its key, made in the test.
type notationCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// notationIssue makes a certificate for cn, valid from notBefore to notAfter,
// signed by parent (self-signed when parent is nil). CAs get what
// notation requires of them (basic constraints, certSign); leaves a
// digitalSignature key usage and the codeSigning extended key usage.
func notationIssue(t *testing.T, cn string, ca bool, parent *notationCert, notBefore, notAfter time.Time) *notationCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Slipway Test"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
	}
	if ca {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	issuer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &notationCert{cert: cert, key: key}
}

// notationPKI is a root CA, an intermediate and a code-signing leaf.
type notationPKI struct {
	root, intermediate, leaf *notationCert
}

func (p notationPKI) chain() []*x509.Certificate {
	return []*x509.Certificate{p.leaf.cert, p.intermediate.cert, p.root.cert}
}

func newNotationPKI(t *testing.T, name string, leafFrom, leafTo time.Time) notationPKI {
	now := time.Now()
	root := notationIssue(t, name+" Root CA", true, nil, now.Add(-72*time.Hour), now.Add(365*24*time.Hour))
	mid := notationIssue(t, name+" Intermediate CA", true, root, now.Add(-72*time.Hour), now.Add(365*24*time.Hour))
	leaf := notationIssue(t, name+" Release Signer", false, mid, leafFrom, leafTo)
	return notationPKI{root: root, intermediate: mid, leaf: leaf}
}

// notationSetup writes a trust store (x509/ca/release/root.pem holding
// root) and a trust policy whose one statement covers scopes, and returns
// the policy's configuration.
func notationSetup(t *testing.T, root *x509.Certificate, scopes ...string) config.VerifyPolicy {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "truststore")
	ca := filepath.Join(store, "x509", "ca", "release")
	if err := os.MkdirAll(ca, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ca, "root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{
		"version": "1.0",
		"trustPolicies": []map[string]any{{
			"name":                  "release",
			"registryScopes":        scopes,
			"signatureVerification": map[string]any{"level": "strict"},
			"trustStores":           []string{"ca:release"},
			"trustedIdentities":     []string{"*"},
		}},
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "trustpolicy.json")
	if err := os.WriteFile(policy, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return config.VerifyPolicy{Name: "release-notation", Notation: &config.NotationPolicy{TrustStore: store, TrustPolicy: policy}}
}

// pushNotationImage pushes a random image to repo in a new in-process registry
// and returns its digest reference.
func pushNotationImage(t *testing.T, reg *testkit.Registry, repo string) name.Digest {
	t.Helper()
	ref := reg.Host + "/" + repo + ":1.0.0"
	d := testkit.PushImage(t, ref, testkit.PushRandomImage(t, ref))
	dig, err := name.NewDigest(reg.Host + "/" + repo + "@" + d)
	if err != nil {
		t.Fatal(err)
	}
	return dig
}

func notationOrasRepository(t *testing.T, img name.Digest) registry.Repository {
	t.Helper()
	repo, err := orasremote.NewRepository(img.Context().Name())
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	return registry.NewRepository(repo)
}

// notationSign signs img as `notation sign` does: notation-go's Sign
// through an oras repository (plain HTTP to the in-process registry),
// which attaches the signature as an OCI 1.1 referrer.
func notationSign(t *testing.T, s notation.Signer, img name.Digest) {
	t.Helper()
	_, err := notation.Sign(t.Context(), s, notationOrasRepository(t, img), notation.SignOptions{
		SignerSignOptions: notation.SignerSignOptions{SignatureMediaType: jws.MediaTypeEnvelope},
		ArtifactReference: img.String(),
	})
	if err != nil {
		t.Fatalf("notation sign %s: %v", img, err)
	}
}

func notationGenericSigner(t *testing.T, p notationPKI) notation.Signer {
	t.Helper()
	s, err := signer.NewGenericSigner(p.leaf.key, p.chain())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// notationSignerAt signs as notation's generic signer does, but at a given time:
// a signature made while its certificate was valid, verified after the
// certificate expired.
type notationSignerAt struct {
	p  notationPKI
	at time.Time
}

func (s notationSignerAt) Sign(_ context.Context, desc ocispec.Descriptor, opts notation.SignerSignOptions) ([]byte, *signature.SignerInfo, error) {
	payload, err := json.Marshal(map[string]any{"targetArtifact": ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}})
	if err != nil {
		return nil, nil, err
	}
	local, err := signature.NewLocalSigner(s.p.chain(), s.p.leaf.key)
	if err != nil {
		return nil, nil, err
	}
	env, err := signature.NewEnvelope(opts.SignatureMediaType)
	if err != nil {
		return nil, nil, err
	}
	sig, err := env.Sign(&signature.SignRequest{
		Payload:       signature.Payload{ContentType: "application/vnd.cncf.notary.payload.v1+json", Content: payload},
		Signer:        local,
		SigningTime:   s.at,
		SigningScheme: signature.SigningSchemeX509,
		SigningAgent:  "slipway-test",
	})
	if err != nil {
		return nil, nil, err
	}
	content, err := env.Verify()
	if err != nil {
		return nil, nil, err
	}
	return sig, &content.SignerInfo, nil
}

func buildNotationPolicy(t *testing.T, p config.VerifyPolicy) Policy {
	t.Helper()
	pols, err := Build([]config.VerifyPolicy{p})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return pols[0]
}

func verifyNotation(t *testing.T, pol Policy, img name.Digest) (string, error) {
	t.Helper()
	v, err := pol.Verify(t.Context(), Image{Ref: img, Options: testkit.RemoteOptions(t)})
	if err == nil {
		if v.Policy != pol.Name() || v.Kind != "notation" {
			t.Errorf("verified = %+v, want policy %s kind notation", v, pol.Name())
		}
		return v.Identity + " | " + v.Issuer, nil
	}
	return "", err
}

// notationRefusal checks that err is a final failure of the policy whose reason
// has every one of words.
func notationRefusal(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified, want a notationRefusal mentioning %q", words)
	}
	if !IsFailure(err) {
		t.Fatalf("error %v is not a verification failure (it would be retried)", err)
	}
	t.Logf("refused: %v", err)
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("notationRefusal %q does not say %q", err, w)
		}
	}
}

// notationSignedImage is a registry holding apps/web signed by a leaf of
// a valid chain.
func notationSignedImage(t *testing.T) (*testkit.Registry, notationPKI, name.Digest) {
	t.Helper()
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	p := newNotationPKI(t, "Acme", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	img := pushNotationImage(t, reg, "apps/web")
	notationSign(t, notationGenericSigner(t, p), img)
	return reg, p, img
}

func TestNotationAcceptsImageSignedByLeafChainingToTrustStore(t *testing.T) {
	reg, p, img := notationSignedImage(t)

	pol := buildNotationPolicy(t, notationSetup(t, p.root.cert, reg.Host+"/apps/web"))
	who, err := verifyNotation(t, pol, img)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	want := p.leaf.cert.Subject.String() + " | " + p.intermediate.cert.Subject.String()
	if who != want {
		t.Errorf("identity | issuer = %q, want %q", who, want)
	}
}

func TestNotationRefusesSignatureByExpiredCertificate(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	expired := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	p := newNotationPKI(t, "Acme", time.Now().Add(-48*time.Hour), expired)
	img := pushNotationImage(t, reg, "apps/web")
	notationSign(t, notationSignerAt{p: p, at: time.Now().Add(-36 * time.Hour)}, img)

	pol := buildNotationPolicy(t, notationSetup(t, p.root.cert, reg.Host+"/apps/web"))
	_, err := verifyNotation(t, pol, img)
	notationRefusal(t, err, "release-notation", "the signing certificate "+p.leaf.cert.Subject.String()+" expired at "+expired.UTC().Format(time.RFC3339))
}

func TestNotationRefusesSignatureChainingToAnotherCA(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	trusted := newNotationPKI(t, "Acme", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	other := newNotationPKI(t, "Mallory", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	img := pushNotationImage(t, reg, "apps/web")
	notationSign(t, notationGenericSigner(t, other), img)

	pol := buildNotationPolicy(t, notationSetup(t, trusted.root.cert, reg.Host+"/apps/web"))
	_, err := verifyNotation(t, pol, img)
	notationRefusal(t, err, "signature by "+other.leaf.cert.Subject.String()+" chains to no CA in trust store ca:release")
}

func TestNotationRefusesSignatureOfAnotherImageAttachedToThisOne(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	p := newNotationPKI(t, "Acme", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	signed := pushNotationImage(t, reg, "apps/web")
	target := pushNotationImage(t, reg, "apps/web")
	repo := notationOrasRepository(t, signed)
	signedDesc, err := repo.Resolve(t.Context(), signed.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	targetDesc, err := repo.Resolve(t.Context(), target.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	// A valid signature by the trusted signer, of the other image,
	// attached to this one.
	blob, _, err := notationGenericSigner(t, p).Sign(t.Context(), signedDesc, notation.SignerSignOptions{SignatureMediaType: jws.MediaTypeEnvelope})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := repo.PushSignature(t.Context(), jws.MediaTypeEnvelope, blob, targetDesc, nil); err != nil {
		t.Fatal(err)
	}

	pol := buildNotationPolicy(t, notationSetup(t, p.root.cert, reg.Host+"/apps/web"))
	_, err = verifyNotation(t, pol, target)
	notationRefusal(t, err, "signature by "+p.leaf.cert.Subject.String()+" signs another image")
	if _, err := verifyNotation(t, pol, signed); err == nil {
		t.Error("the image the signature is about is verified; want refused too (its signature is attached elsewhere)")
	}
}

func TestNotationRefusesUnsignedImage(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	p := newNotationPKI(t, "Acme", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	signed := pushNotationImage(t, reg, "apps/web")
	notationSign(t, notationGenericSigner(t, p), signed)
	unsigned := pushNotationImage(t, reg, "apps/api")

	pol := buildNotationPolicy(t, notationSetup(t, p.root.cert, reg.Host+"/apps/web", reg.Host+"/apps/api"))
	_, err := verifyNotation(t, pol, unsigned)
	notationRefusal(t, err, "no Notation signature on "+unsigned.DigestStr())
}

func TestNotationRefusesImageOutsideTrustPolicyScopes(t *testing.T) {
	reg, p, img := notationSignedImage(t)

	pol := buildNotationPolicy(t, notationSetup(t, p.root.cert, reg.Host+"/apps/other"))
	_, err := verifyNotation(t, pol, img)
	notationRefusal(t, err, "no trust policy applies to "+reg.Host+"/apps/web", reg.Host+"/apps/other")
}

func TestNotationUnreachableRegistryIsRetryableNotARefusal(t *testing.T) {
	reg, p, img := notationSignedImage(t)
	pol := buildNotationPolicy(t, notationSetup(t, p.root.cert, reg.Host+"/apps/web"))

	reg.Stop()
	t.Cleanup(func() { _ = reg.Start() })
	_, err := verifyNotation(t, pol, img)
	if err == nil || IsFailure(err) {
		t.Fatalf("verify with the registry down = %v, want a plain (retryable) error", err)
	}
}

func TestNotationBuildNamesWhatIsWrong(t *testing.T) {
	p := newNotationPKI(t, "Acme", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	good := notationSetup(t, p.root.cert, "registry.example/apps/web")

	missingStore := *good.Notation
	missingStore.TrustStore = filepath.Join(t.TempDir(), "nowhere")

	badJSON := *good.Notation
	badJSON.TrustPolicy = filepath.Join(t.TempDir(), "trustpolicy.json")
	if err := os.WriteFile(badJSON.TrustPolicy, []byte(`{"version": "1.0", "trustPolicies": [`), 0o644); err != nil {
		t.Fatal(err)
	}

	noStatements := *good.Notation
	noStatements.TrustPolicy = filepath.Join(t.TempDir(), "trustpolicy.json")
	if err := os.WriteFile(noStatements.TrustPolicy, []byte(`{"version": "1.0", "trustPolicies": []}`), 0o644); err != nil {
		t.Fatal(err)
	}

	emptyStore := *good.Notation
	emptyStore.TrustStore = t.TempDir()

	for _, tc := range []struct {
		name  string
		n     config.NotationPolicy
		words []string
	}{
		{"missing trust store", missingStore, []string{"verify[0].notation", "trustStore", "nowhere", "no such file"}},
		{"invalid policy JSON", badJSON, []string{"verify[0].notation", "trustPolicy " + badJSON.TrustPolicy, "not a trust policy document"}},
		{"policy without statements", noStatements, []string{"trustPolicy " + noStatements.TrustPolicy, "zero trust policy statements"}},
		{"store the policy names is absent", emptyStore, []string{`statement "release"`, "trust store ca:release", `"release" of type "ca" does not exist`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			_, err := Build([]config.VerifyPolicy{{Notation: &n}})
			if err == nil {
				t.Fatal("built, want an error")
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := Build([]config.VerifyPolicy{good}); err != nil {
		t.Errorf("the good policy: %v", err)
	}
}
