package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// writeKeyPair writes a new key pair (ECDSA P-256, or Ed25519) as PEM
// files and returns their paths.
func writeKeyPair(t *testing.T, ed bool) (keyFile, pubFile string) {
	t.Helper()
	if ed {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return testkit.WriteKeyFiles(t, k)
	}
	k, _ := testkit.GenerateKey(t)
	return testkit.WriteKeyFiles(t, k)
}

func signingKey(t *testing.T, ed bool) (signer, checker *SummaryKey) {
	t.Helper()
	keyFile, pubFile := writeKeyPair(t, ed)
	s, err := LoadSummaryKey(config.SummaryKey{KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadSummaryKey(config.SummaryKey{PublicKeyFile: pubFile})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != c.ID {
		t.Fatalf("key id from the private key %s, from the public key %s", s.ID, c.ID)
	}
	return s, c
}

// pushed pushes a random image to a new in-process registry and returns it
// as an Image.
func pushed(t *testing.T, reg *testkit.Registry, repo string) Image {
	t.Helper()
	ref := reg.Host + "/" + repo + ":1.0.0"
	testkit.PushRandomImage(t, ref)
	d, err := name.NewDigest(reg.Host + "/" + repo + "@" + testkit.Digest(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	return Image{Ref: d, Options: testkit.RemoteOptions(t)}
}

var passed = []events.Verified{
	{Policy: "signed", Kind: "cosign", Identity: "sha256:ab"},
	{Policy: "built-by-ci", Kind: "provenance", Identity: "ci@example.com", Builder: "https://builder.example/v1", Source: "github.com/example/payments"},
}

// onlySummary is the bundle of the one summary attached to img.
func onlySummary(t *testing.T, img Image, k *SummaryKey) []byte {
	t.Helper()
	p, err := puller(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := summaries(t.Context(), img, p, k)
	if err != nil || len(found) != 1 {
		t.Fatalf("summaries of %s: %v, %v; want one", img.Ref, found, err)
	}
	raw, err := firstLayer(t.Context(), p, img.Ref.Context().Digest(found[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func failureReason(t *testing.T, err error) string {
	t.Helper()
	if !IsFailure(err) {
		t.Fatalf("want a verification failure, got %v", err)
	}
	return err.Error()
}

func TestSummaryRoundTripNamesThePoliciesThatPassed(t *testing.T) {
	for _, ed := range []bool{false, true} {
		t.Run(map[bool]string{false: "ecdsa", true: "ed25519"}[ed], func(t *testing.T) {
			reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
			img := pushed(t, reg, "prd/payments")
			signer, checker := signingKey(t, ed)
			now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

			d, err := Summarize(t.Context(), img, img.Ref.String(), passed, signer, "", now)
			if err != nil {
				t.Fatal(err)
			}
			s, err := CheckSummary(t.Context(), img, checker)
			if err != nil {
				t.Fatal(err)
			}
			if s.Digest != d || s.Verifier != DefaultVerifierID || !s.TimeVerified.Equal(now) || s.KeyID != checker.ID {
				t.Errorf("summary %+v, want digest %s, verifier %s, time %s", s, d, DefaultVerifierID, now)
			}
			if !samePolicies(s.Policies, passed) {
				t.Errorf("policies %+v, want %+v", s.Policies, passed)
			}
		})
	}
}

func TestSummarizeTwiceAttachesOneSummary(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "prd/payments")
	signer, _ := signingKey(t, false)
	first, err := Summarize(t.Context(), img, img.Ref.String(), passed, signer, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := Summarize(t.Context(), img, img.Ref.String(), passed, signer, "", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("second summary %s, want the first %s reused", again, first)
	}
	p, err := puller(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := summaries(t.Context(), img, p, signer)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Errorf("%d summaries attached, want 1", len(found))
	}
}

func TestCheckSummaryRefusesAnImageWithout(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "prd/payments")
	_, checker := signingKey(t, false)
	_, err := CheckSummary(t.Context(), img, checker)
	if msg := failureReason(t, err); !strings.Contains(msg, "no verification summary") {
		t.Errorf("reason %q, want no verification summary", msg)
	}
}

func TestCheckSummaryRefusesOneSignedByAnotherKey(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "prd/payments")
	forger, _ := signingKey(t, false)
	_, checker := signingKey(t, false)
	if _, err := Summarize(t.Context(), img, img.Ref.String(), passed, forger, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := CheckSummary(t.Context(), img, checker)
	if msg := failureReason(t, err); !strings.Contains(msg, "signed by another key ("+forger.ID+")") {
		t.Errorf("reason %q, want signed by another key naming %s", msg, forger.ID)
	}
}

func TestCheckSummaryRefusesAValidOneCopiedOntoAnotherImage(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	verified := pushed(t, reg, "prd/payments")
	other := pushed(t, reg, "prd/payments")
	signer, checker := signingKey(t, false)
	if _, err := Summarize(t.Context(), verified, verified.Ref.String(), passed, signer, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	raw := onlySummary(t, verified, checker)
	if _, err := pushReferrer(t.Context(), other, BundleMediaType, raw, nil); err != nil {
		t.Fatal(err)
	}

	_, err := CheckSummary(t.Context(), other, checker)
	if msg := failureReason(t, err); !strings.Contains(msg, "summary is about another image ("+verified.Ref.DigestStr()+")") {
		t.Errorf("reason %q, want about another image naming %s", msg, verified.Ref.DigestStr())
	}
}

func TestCheckSummaryRefusesATamperedPayload(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "prd/payments")
	signer, checker := signingKey(t, false)
	if _, err := Summarize(t.Context(), img, img.Ref.String(), nil, signer, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	raw := onlySummary(t, img, checker)
	// Someone adds a policy that never ran to the signed statement.
	var b bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(b.DSSEEnvelope.Payload)
	forged := strings.Replace(string(payload), `"slipwayPolicies":[]`, `"slipwayPolicies":[{"policy":"signed","kind":"cosign"}]`, 1)
	if forged == string(payload) {
		t.Fatalf("payload has no empty policy list to forge: %s", payload)
	}
	// Onto a fresh image, so that only the forged summary is attached.
	target := pushed(t, reg, "prd/other")
	forgedStmt := strings.Replace(forged, strings.TrimPrefix(img.Ref.DigestStr(), "sha256:"), strings.TrimPrefix(target.Ref.DigestStr(), "sha256:"), 1)
	b.DSSEEnvelope.Payload = base64.StdEncoding.EncodeToString([]byte(forgedStmt))
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pushReferrer(t.Context(), target, BundleMediaType, raw, nil); err != nil {
		t.Fatal(err)
	}
	_, err = CheckSummary(t.Context(), target, checker)
	if msg := failureReason(t, err); !strings.Contains(msg, "does not verify with Slipway's key") {
		t.Errorf("reason %q, want the signature not verifying", msg)
	}
}

func TestLoadSummaryKeyNamesTheFileAndTheProblem(t *testing.T) {
	keyFile, _ := writeKeyPair(t, false)
	_, otherPub := writeKeyPair(t, false)
	rsaFile := filepath.Join(t.TempDir(), "p384.pem")
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  config.SummaryKey
		want string
	}{
		{"none", config.SummaryKey{}, "set keyFile"},
		{"missing", config.SummaryKey{KeyFile: "/nonexistent/key.pem"}, "keyFile /nonexistent/key.pem"},
		{"not a pair", config.SummaryKey{KeyFile: keyFile, PublicKeyFile: otherPub}, "is not the public key of keyFile"},
		{"wrong curve", config.SummaryKey{KeyFile: rsaFile}, "want P-256"},
		{"private key as public", config.SummaryKey{PublicKeyFile: keyFile}, `holds a "PRIVATE KEY" block`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSummaryKey(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
