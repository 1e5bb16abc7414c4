package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Annotations of cosign's tag-scheme signature layers.
const (
	cosignSignatureAnnot   = "dev.cosignproject.cosign/signature"
	cosignCertificateAnnot = "dev.sigstore.cosign/certificate"
	cosignTimestampAnnot   = "dev.sigstore.cosign/rfc3161timestamp"
	simpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// cosignPolicy accepts an image with at least one cosign signature, in the
// tag scheme or as a referrer bundle, that verifies with its key (or its
// trusted root and identity) and is over the image's digest.
type cosignPolicy struct {
	name     string
	verifier *sgverify.Verifier
	// keyed
	fingerprint string
	// keyless
	identity *sgverify.CertificateIdentity
	want     string // the identity wanted, in words
}

func buildCosign(name string, p config.VerifyPolicy) (Policy, error) {
	return newCosign(name, *p.Cosign)
}

// newCosign builds the verification a cosign policy says: its key, or its
// trusted root and identity. Provenance policies verify their
// attestations' signatures with it too.
func newCosign(name string, c config.CosignPolicy) (*cosignPolicy, error) {
	set := 0
	for _, s := range []bool{c.Key != "", c.KeyFile != "", c.Keyless != nil} {
		if s {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("set exactly one of key, keyFile and keyless")
	}
	pol := &cosignPolicy{name: name}
	var err error
	if c.Keyless != nil {
		err = pol.keyless(c.Keyless)
	} else {
		err = pol.keyed(c.Key, c.KeyFile)
	}
	if err != nil {
		return nil, err
	}
	return pol, nil
}

func (c *cosignPolicy) keyed(inline, file string) error {
	what, raw := "key", []byte(inline)
	if file != "" {
		what = "keyFile " + file
		var err error
		if raw, err = os.ReadFile(file); err != nil {
			return fmt.Errorf("keyFile: %w", err)
		}
	}
	pub, der, err := parsePublicKey(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	sum := sha256.Sum256(der)
	c.fingerprint = "sha256:" + hex.EncodeToString(sum[:])
	// Whatever key hint a bundle carries, the policy's key is the one
	// that must verify it. Keyed signatures carry no time to check: a
	// key, unlike a certificate, does not expire.
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(v, time.Time{}, time.Time{}), nil
	})
	c.verifier, err = sgverify.NewVerifier(tm, sgverify.WithNoObserverTimestamps())
	return err
}

// parsePublicKey reads a PEM public key (PKIX) of a type cosign signs
// with, returning it and its DER.
func parsePublicKey(raw []byte) (crypto.PublicKey, []byte, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, nil, errors.New("no PEM block found (want -----BEGIN PUBLIC KEY-----)")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, nil, fmt.Errorf("PEM block is %q, want PUBLIC KEY", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse the public key: %w", err)
	}
	switch pub.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, nil, fmt.Errorf("unsupported key type %T (want ECDSA, RSA or Ed25519)", pub)
	}
	return pub, block.Bytes, nil
}

func (c *cosignPolicy) keyless(k *config.Keyless) error {
	if k.TrustedRoot == "" {
		return errors.New("keyless: trustedRoot is required")
	}
	tr, err := root.NewTrustedRootFromPath(k.TrustedRoot)
	if err != nil {
		return fmt.Errorf("keyless.trustedRoot %s: %w", k.TrustedRoot, err)
	}
	if k.Issuer == "" {
		return errors.New("keyless: issuer is required")
	}
	if (k.Subject == "") == (k.SubjectRegex == "") {
		return errors.New("keyless: set exactly one of subject and subjectRegex")
	}
	if k.SubjectRegex != "" {
		if _, err := regexp.Compile(k.SubjectRegex); err != nil {
			return fmt.Errorf("keyless.subjectRegex: %w", err)
		}
		c.want = fmt.Sprintf("subject matching %s issued by %s", k.SubjectRegex, k.Issuer)
	} else {
		c.want = fmt.Sprintf("subject %s issued by %s", k.Subject, k.Issuer)
	}
	id, err := sgverify.NewShortCertificateIdentity(k.Issuer, "", k.Subject, k.SubjectRegex)
	if err != nil {
		return fmt.Errorf("keyless: %w", err)
	}
	c.identity = &id
	// A short-lived certificate is valid only for minutes, so something
	// must vouch that the signature was made then. A transparency log
	// (Rekor) does for Sigstore's public instance; a timestamp authority
	// for private ones that have no log. Require what the root trusts:
	// requiring a log entry a root cannot verify would refuse every
	// signature.
	var opts []sgverify.VerifierOption
	if len(tr.RekorLogs()) > 0 {
		opts = append(opts, sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
	}
	if len(tr.TimestampingAuthorities()) > 0 && len(tr.RekorLogs()) == 0 {
		opts = append(opts, sgverify.WithSignedTimestamps(1))
	}
	if len(opts) == 0 {
		return fmt.Errorf("keyless.trustedRoot %s: no transparency log and no timestamp authority to vouch for a signature's time", k.TrustedRoot)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return fmt.Errorf("keyless.trustedRoot %s: no certificate authority", k.TrustedRoot)
	}
	c.verifier, err = sgverify.NewVerifier(tr, opts...)
	return err
}

func (c *cosignPolicy) Name() string { return c.name }
func (c *cosignPolicy) Kind() string { return "cosign" }

// candidate is one signature found: the entity sigstore-go verifies, the
// digest it claims to sign, and the artifact it signs.
type candidate struct {
	entity   sgverify.SignedEntity
	claimed  string // "sha256:…" the signature says it is over
	artifact sgverify.ArtifactPolicyOption
	where    string
	err      error // the signature could not be read
}

func (c *cosignPolicy) Verify(ctx context.Context, img Image) (events.Verified, error) {
	cands, err := c.candidates(ctx, img)
	if err != nil {
		return events.Verified{}, err
	}
	if len(cands) == 0 {
		return events.Verified{}, c.fail("unsigned: no cosign signature found (looked for tag %s.sig and referrers)",
			strings.Replace(img.Ref.DigestStr(), ":", "-", 1))
	}
	var (
		otherDigest string
		identities  []string
		firstErr    error
	)
	for _, cd := range cands {
		err := cd.err
		var res *sgverify.VerificationResult
		if err == nil {
			res, err = c.verifyEntity(cd.entity, cd.artifact)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", cd.where, err)
			}
			continue
		}
		if cd.claimed != img.Ref.DigestStr() {
			otherDigest = cd.claimed
			continue
		}
		signer, other := c.signer(res)
		if other != "" {
			identities = append(identities, other)
			continue
		}
		if signer.Identity == "" {
			continue
		}
		signer.Policy, signer.Kind = c.name, "cosign"
		return signer, nil
	}
	switch {
	case otherDigest != "" && c.identity == nil:
		return events.Verified{}, c.fail("the signature by key %s is over another image (%s)", c.fingerprint, otherDigest)
	case otherDigest != "":
		return events.Verified{}, c.fail("the signature is over another image (%s)", otherDigest)
	case len(identities) > 0:
		return events.Verified{}, c.fail("%s, want %s", strings.Join(identities, "; "), c.want)
	case c.identity == nil:
		return events.Verified{}, c.fail("%s found, none by key %s", plural(len(cands), "signature"), c.fingerprint)
	default:
		return events.Verified{}, c.fail("%s found, none verifies against the trusted root (%v)", plural(len(cands), "signature"), firstErr)
	}
}

// verifyEntity checks a signature (or a DSSE envelope) cryptographically:
// with the policy's key, or against its trusted root. A keyless signer's
// identity is left to signer, to say whose it was when it is not wanted.
func (c *cosignPolicy) verifyEntity(e sgverify.SignedEntity, artifact sgverify.ArtifactPolicyOption) (*sgverify.VerificationResult, error) {
	pol := sgverify.WithKey()
	if c.identity != nil {
		pol = sgverify.WithoutIdentitiesUnsafe()
	}
	return c.verifier.Verify(e, sgverify.NewPolicy(artifact, pol))
}

// signer is who made a verified signature: the key's fingerprint, or the
// certificate's subject and issuer when they are the identity wanted.
// Another identity is returned in words, as other; a keyless result
// without a certificate is neither.
func (c *cosignPolicy) signer(res *sgverify.VerificationResult) (v events.Verified, other string) {
	if c.identity == nil {
		return events.Verified{Identity: c.fingerprint}, ""
	}
	cert := res.Signature.Certificate
	if cert == nil {
		return events.Verified{}, ""
	}
	if err := c.identity.Verify(*cert); err != nil {
		return events.Verified{}, fmt.Sprintf("certificate for %s issued by %s", cert.SubjectAlternativeName, cert.Issuer)
	}
	return events.Verified{Identity: cert.SubjectAlternativeName, Issuer: cert.Issuer}, ""
}

func (c *cosignPolicy) fail(format string, args ...any) *Failure {
	return &Failure{Policy: c.name, Reason: fmt.Sprintf(format, args...)}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// candidates are the image's cosign signatures in both forms. A malformed
// one is kept as a candidate that fails to verify, so that it counts among
// those found.
func (c *cosignPolicy) candidates(ctx context.Context, img Image) ([]candidate, error) {
	layers, bundles, err := attachments(ctx, img, "sig")
	if err != nil {
		return nil, err
	}
	var out []candidate
	for i, l := range layers {
		if l.MediaType != simpleSigningMediaType {
			continue
		}
		out = append(out, tagCandidate(l, fmt.Sprintf("signature %d of the .sig tag", i+1)))
	}
	for _, rb := range bundles {
		if _, ok := rb.Annotations[BundlePredicateAnnot]; ok {
			continue // an attestation, not a signature
		}
		if cd, ok := bundleCandidate(rb); ok {
			out = append(out, cd)
		}
	}
	return out, nil
}

// attachments are what is attached to img in both forms: the layers of
// its cosign tag (suffix sig or att) and its referrer bundles.
func attachments(ctx context.Context, img Image, suffix string) ([]TagLayer, []ReferrerBundle, error) {
	layers, err := TagLayers(ctx, img, suffix)
	if err != nil {
		return nil, nil, err
	}
	bundles, err := ReferrerBundles(ctx, img)
	if err != nil {
		return nil, nil, err
	}
	return layers, bundles, nil
}

// tagCandidate turns a tag-scheme layer into a bundle sigstore-go
// verifies: a message signature over the simple-signing payload, with the
// layer's certificate and timestamp when keyless.
func tagCandidate(l TagLayer, where string) candidate {
	cd := candidate{where: where, artifact: sgverify.WithArtifact(bytes.NewReader(l.Content))}
	var payload struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	_ = json.Unmarshal(l.Content, &payload) // a malformed payload claims no digest and fails below
	cd.claimed = payload.Critical.Image.Digest
	sig, _ := base64.StdEncoding.DecodeString(l.Annotations[cosignSignatureAnnot])
	sum := sha256.Sum256(l.Content)
	pb := &protobundle.Bundle{
		MediaType: BundleMediaType,
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
			Signature:     sig,
		}},
		VerificationMaterial: tagMaterial(l.Annotations),
	}
	cd.entity, cd.err = entity(pb)
	return cd
}

// tagMaterial is a tag-scheme layer's verification material as a bundle
// holds it: the certificate and timestamp of its annotations when keyless,
// an empty key hint otherwise (the policy's key is the one that counts).
func tagMaterial(annotations map[string]string) *protobundle.VerificationMaterial {
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{}},
	}
	if certPEM := annotations[cosignCertificateAnnot]; certPEM != "" {
		if block, _ := pem.Decode([]byte(certPEM)); block != nil {
			vm.Content = &protobundle.VerificationMaterial_Certificate{
				Certificate: &protocommon.X509Certificate{RawBytes: block.Bytes},
			}
		}
	}
	if ts := annotations[cosignTimestampAnnot]; ts != "" {
		var t struct {
			SignedRFC3161Timestamp []byte
		}
		if json.Unmarshal([]byte(ts), &t) == nil {
			vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: t.SignedRFC3161Timestamp}},
			}
		}
	}
	return vm
}

// bundleCandidate is a referrer bundle; a message signature claims the
// digest it carries, and is checked against it so that a signature over
// another image is told apart from a bad one.
func bundleCandidate(rb ReferrerBundle) (candidate, bool) {
	where := "referrer " + rb.Digest
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(rb.Content); err != nil {
		return candidate{where: where, err: err}, true
	}
	ms := b.GetMessageSignature()
	if ms == nil || ms.GetMessageDigest() == nil {
		// Not a message signature (a DSSE envelope without predicate
		// type annotation): an attestation, not cosign's signature.
		return candidate{}, false
	}
	d := ms.GetMessageDigest()
	if d.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 {
		return candidate{where: where, err: fmt.Errorf("message digest algorithm %s, want SHA2_256", d.GetAlgorithm())}, true
	}
	return candidate{
		where:    where,
		entity:   &b,
		claimed:  "sha256:" + hex.EncodeToString(d.GetDigest()),
		artifact: sgverify.WithArtifactDigest("sha256", d.GetDigest()),
	}, true
}

func entity(pb *protobundle.Bundle) (sgverify.SignedEntity, error) {
	return sgbundle.NewBundle(pb)
}
