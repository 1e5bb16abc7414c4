package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// The verification summary's formats: a SLSA verification summary
// attestation (an in-toto v1 statement) in a DSSE envelope, packaged as a
// Sigstore bundle v0.3 and attached to the image as an OCI 1.1 referrer,
// as `cosign attest --new-bundle-format` attaches an attestation.
const (
	VSAPredicateType     = "https://slsa.dev/verification_summary/v1"
	InTotoStatementType  = "https://in-toto.io/Statement/v1"
	InTotoPayloadType    = "application/vnd.in-toto+json"
	BundleMediaType      = "application/vnd.dev.sigstore.bundle.v0.3+json"
	BundlePredicateAnnot = "dev.sigstore.bundle.predicateType"
	// DefaultVerifierID is the summary's verifier.id when the
	// configuration names none.
	DefaultVerifierID = "https://slipway.dev/promoter"
	// SummaryPolicy is the name a summary's failures carry.
	SummaryPolicy = "summary"
	// summaryPolicyURI is the VSA's policy.uri: the promotion rule's verify
	// list, whose passed policies the predicate lists by name.
	summaryPolicyURI = "slipway:promotion/verify"
)

// SummaryKey is Slipway's own key: the promoter signs summaries with it,
// a deployer checks them with its public half.
type SummaryKey struct {
	signer crypto.Signer // nil: public key only
	public crypto.PublicKey
	// ID is sha256:<hex> of the DER (PKIX) public key.
	ID string
}

// CanSign reports whether the key holds its private half.
func (k *SummaryKey) CanSign() bool { return k != nil && k.signer != nil }

// LoadSummaryKey reads verification.summary: the private key (PEM, PKCS#8
// or SEC 1 EC; ECDSA P-256 or Ed25519), from which the public key is
// derived, and/or the public key (PEM, PKIX). Given both, they must be a
// pair.
func LoadSummaryKey(cfg config.SummaryKey) (*SummaryKey, error) {
	if cfg.KeyFile == "" && cfg.PublicKeyFile == "" {
		return nil, errors.New("verification.summary: set keyFile (to sign) or publicKeyFile (to check)")
	}
	k := &SummaryKey{}
	if cfg.KeyFile != "" {
		s, err := readPrivateKey(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("verification.summary.keyFile %s: %w", cfg.KeyFile, err)
		}
		k.signer, k.public = s, s.Public()
	}
	if cfg.PublicKeyFile != "" {
		pub, err := readPublicKey(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("verification.summary.publicKeyFile %s: %w", cfg.PublicKeyFile, err)
		}
		if k.public != nil {
			if eq, ok := k.public.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub) {
				return nil, fmt.Errorf("verification.summary.publicKeyFile %s is not the public key of keyFile %s", cfg.PublicKeyFile, cfg.KeyFile)
			}
		}
		k.public = pub
	}
	id, err := keyID(k.public)
	if err != nil {
		return nil, err
	}
	k.ID = id
	return k, nil
}

func readPEM(path, want string) (*pem.Block, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("not PEM (want a %s)", want)
	}
	return b, nil
}

func readPrivateKey(path string) (crypto.Signer, error) {
	b, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	var key any
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		return nil, fmt.Errorf("is an encrypted key (%s); give an unencrypted PKCS#8 key", b.Type)
	default:
		return nil, fmt.Errorf("holds a %q block, want PRIVATE KEY (PKCS#8) or EC PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("is an ECDSA key on %s, want P-256", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("is a %T, want ECDSA P-256 or Ed25519", key)
}

func readPublicKey(path string) (crypto.PublicKey, error) {
	b, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	if b.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("holds a %q block, want PUBLIC KEY", b.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("is an ECDSA key on %s, want P-256", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("is a %T, want ECDSA P-256 or Ed25519", pub)
}

func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// pae is DSSE's pre-authentication encoding, what a DSSE signature signs.
func pae(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// sign signs a DSSE envelope's PAE: ECDSA over its SHA-256 (ASN.1),
// Ed25519 over the message itself, as sigstore's signers do.
func (k *SummaryKey) sign(msg []byte) ([]byte, error) {
	if _, ok := k.signer.(ed25519.PrivateKey); ok {
		return k.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	sum := sha256.Sum256(msg)
	return k.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// verifySig checks a signature over msg made as sign makes it.
func verifySig(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, sum[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	}
	return false
}

// Envelope is a DSSE envelope (JSON as in Sigstore bundles and cosign's
// .att layers).
type Envelope struct {
	Payload     string        `json:"payload"`
	PayloadType string        `json:"payloadType"`
	Signatures  []EnvelopeSig `json:"signatures"`
}

// EnvelopeSig is one signature of an envelope; KeyID is a claim, not
// checked by anyone.
type EnvelopeSig struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"`
}

// verifiedBy returns the envelope's payload when one of its signatures
// verifies with pub.
func (e Envelope) verifiedBy(pub crypto.PublicKey) ([]byte, bool) {
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, false
	}
	msg := pae(e.PayloadType, payload)
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && verifySig(pub, msg, sig) {
			return payload, true
		}
	}
	return nil, false
}

// bundle is the part of a Sigstore bundle v0.3 (protobuf JSON) a summary
// uses: a DSSE envelope and the hint of the public key that signed it.
type bundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey,omitempty"`
		TlogEntries []json.RawMessage `json:"tlogEntries"`
	} `json:"verificationMaterial"`
	DSSEEnvelope *Envelope `json:"dsseEnvelope,omitempty"`
}

// Statement is an in-toto v1 statement.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject is one artifact a statement is about.
type Subject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// about reports whether the statement names digest d (sha256:<hex>).
func (s Statement) about(d string) bool {
	alg, hexd, ok := strings.Cut(d, ":")
	if !ok {
		return false
	}
	return slices.ContainsFunc(s.Subject, func(sub Subject) bool { return strings.EqualFold(sub.Digest[alg], hexd) })
}

// subjectDigests lists the statement's digests, for a failure's words.
func (s Statement) subjectDigests() string {
	var out []string
	for _, sub := range s.Subject {
		for alg, h := range sub.Digest {
			out = append(out, alg+":"+h)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// vsaPredicate is the SLSA verification summary v1 predicate; the policies
// that passed are listed under slipwayPolicies (a predicate may carry
// fields of its own producer).
type vsaPredicate struct {
	Verifier struct {
		ID string `json:"id"`
	} `json:"verifier"`
	TimeVerified time.Time `json:"timeVerified"`
	ResourceURI  string    `json:"resourceUri"`
	Policy       struct {
		URI string `json:"uri"`
	} `json:"policy"`
	VerificationResult string            `json:"verificationResult"`
	VerifiedLevels     []string          `json:"verifiedLevels,omitempty"`
	SlipwayPolicies    []events.Verified `json:"slipwayPolicies"`
}

// Summary is a verification summary found on an image and checked.
type Summary struct {
	// Digest is the summary's manifest (the referrer).
	Digest       string
	Verifier     string
	TimeVerified time.Time
	ResourceURI  string
	Policies     []events.Verified
	KeyID        string
}

// Summarize attaches to img, in the registry img names (the promotion's
// target), a verification summary of the policies that passed, signed
// with k; it returns the summary's manifest digest. A summary signed with
// k that already lists the same policies is reused: a promotion
// delivered again does not attach a second one.
func Summarize(ctx context.Context, img Image, resourceURI string, policies []events.Verified, k *SummaryKey, verifierID string, now time.Time) (string, error) {
	if !k.CanSign() {
		return "", errors.New("verification summary: Slipway's key has no private half (verification.summary.keyFile)")
	}
	if verifierID == "" {
		verifierID = DefaultVerifierID
	}
	p, err := puller(ctx, img)
	if err != nil {
		return "", err
	}
	found, _, err := summaries(ctx, img, p, k)
	if err != nil {
		return "", err
	}
	for _, s := range found {
		if s.Verifier == verifierID && samePolicies(s.Policies, policies) {
			return s.Digest, nil
		}
	}

	var pred vsaPredicate
	pred.Verifier.ID = verifierID
	pred.TimeVerified = now.UTC().Truncate(time.Second)
	pred.ResourceURI = resourceURI
	pred.Policy.URI = summaryPolicyURI
	pred.VerificationResult = "PASSED"
	pred.SlipwayPolicies = policies
	if pred.SlipwayPolicies == nil {
		pred.SlipwayPolicies = []events.Verified{}
	}
	if slices.ContainsFunc(policies, func(v events.Verified) bool { return v.Kind == "provenance" }) {
		// Signed provenance from a builder the rule trusts: what SLSA
		// build level 2 asks of the consumer's side.
		pred.VerifiedLevels = []string{"SLSA_BUILD_LEVEL_2"}
	}
	rawPred, err := json.Marshal(pred)
	if err != nil {
		return "", err
	}
	stmt := Statement{
		Type:          InTotoStatementType,
		Subject:       []Subject{{Name: img.Ref.Context().Name(), Digest: map[string]string{"sha256": strings.TrimPrefix(img.Ref.DigestStr(), "sha256:")}}},
		PredicateType: VSAPredicateType,
		Predicate:     rawPred,
	}
	payload, err := json.Marshal(stmt)
	if err != nil {
		return "", err
	}
	sig, err := k.sign(pae(InTotoPayloadType, payload))
	if err != nil {
		return "", fmt.Errorf("verification summary: sign: %w", err)
	}
	var b bundle
	b.MediaType = BundleMediaType
	b.VerificationMaterial.PublicKey = &struct {
		Hint string `json:"hint"`
	}{Hint: k.ID}
	b.VerificationMaterial.TlogEntries = []json.RawMessage{}
	b.DSSEEnvelope = &Envelope{
		Payload: base64.StdEncoding.EncodeToString(payload), PayloadType: InTotoPayloadType,
		Signatures: []EnvelopeSig{{KeyID: k.ID, Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	return pushReferrer(ctx, img, BundleMediaType, raw, map[string]string{BundlePredicateAnnot: VSAPredicateType})
}

func samePolicies(a, b []events.Verified) bool {
	return slices.EqualFunc(a, b, func(x, y events.Verified) bool { return x == y })
}

// CheckSummary finds the verification summaries attached to img and
// returns the one signed with k about img that says PASSED; a *Failure
// says why there is none.
func CheckSummary(ctx context.Context, img Image, k *SummaryKey) (Summary, error) {
	p, err := puller(ctx, img)
	if err != nil {
		return Summary{}, err
	}
	found, rejected, err := summaries(ctx, img, p, k)
	if err != nil {
		return Summary{}, err
	}
	if len(found) > 0 {
		return found[0], nil
	}
	if len(rejected) == 0 {
		return Summary{}, &Failure{Policy: SummaryPolicy, Reason: "no verification summary"}
	}
	return Summary{}, &Failure{Policy: SummaryPolicy, Reason: strings.Join(rejected, "; ")}
}

// summaries lists the summaries attached to img that are signed with k,
// about img and PASSED (newest first), and in words why the others are not.
func summaries(ctx context.Context, img Image, p *remote.Puller, k *SummaryKey) (found []Summary, rejected []string, err error) {
	refs, err := oci.OCIReferrers(ctx, img.Ref, p)
	if err != nil {
		return nil, nil, fmt.Errorf("verification summary: list referrers of %s: %w", img.Ref, err)
	}
	for _, d := range refs {
		if d.ArtifactType != BundleMediaType {
			continue
		}
		if pt, ok := d.Annotations[BundlePredicateAnnot]; ok && pt != VSAPredicateType {
			continue
		}
		ref := img.Ref.Context().Digest(d.Digest.String())
		raw, err := firstLayer(ctx, p, ref)
		if err != nil {
			return nil, nil, fmt.Errorf("verification summary %s: %w", ref, err)
		}
		s, why := checkBundle(raw, img.Ref.DigestStr(), k)
		if why != "" {
			if why != "not a summary" {
				rejected = append(rejected, why)
			}
			continue
		}
		s.Digest = d.Digest.String()
		found = append(found, s)
	}
	slices.SortStableFunc(found, func(a, b Summary) int { return b.TimeVerified.Compare(a.TimeVerified) })
	return found, rejected, nil
}

// checkBundle checks one bundle; why says what is wrong with it.
func checkBundle(raw []byte, digest string, k *SummaryKey) (s Summary, why string) {
	var b bundle
	if err := json.Unmarshal(raw, &b); err != nil || b.DSSEEnvelope == nil {
		return s, "summary is not a Sigstore bundle with a DSSE envelope"
	}
	env := *b.DSSEEnvelope
	if env.PayloadType != InTotoPayloadType {
		return s, "not a summary"
	}
	payload, ok := env.verifiedBy(k.public)
	if !ok {
		claimed := ""
		for _, sig := range env.Signatures {
			if sig.KeyID != "" {
				claimed = sig.KeyID
				break
			}
		}
		if claimed != "" && claimed != k.ID {
			return s, fmt.Sprintf("summary signed by another key (%s), not Slipway's (%s)", claimed, k.ID)
		}
		return s, fmt.Sprintf("summary's signature does not verify with Slipway's key (%s): signed by another key, or altered after signing", k.ID)
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return s, "summary's payload is not an in-toto statement"
	}
	if st.PredicateType != VSAPredicateType {
		return s, "not a summary"
	}
	if !st.about(digest) {
		return s, fmt.Sprintf("summary is about another image (%s)", st.subjectDigests())
	}
	var pred vsaPredicate
	if err := json.Unmarshal(st.Predicate, &pred); err != nil {
		return s, "summary's predicate is not a SLSA verification summary: " + err.Error()
	}
	if pred.VerificationResult != "PASSED" {
		return s, fmt.Sprintf("summary says %s", pred.VerificationResult)
	}
	return Summary{
		Verifier: pred.Verifier.ID, TimeVerified: pred.TimeVerified, ResourceURI: pred.ResourceURI,
		Policies: pred.SlipwayPolicies, KeyID: k.ID,
	}, ""
}

// puller reaches img's registry as img.Options say.
func puller(ctx context.Context, img Image) (*remote.Puller, error) {
	return remote.NewPuller(append(slices.Clone(img.Options), remote.WithContext(ctx))...)
}

// maxArtifact bounds what is read of an attached artifact's layer: a
// bundle or an attestation is kilobytes, and a registry's answer must not
// fill the memory.
const maxArtifact = 4 << 20

// firstLayer reads the first layer of the manifest ref (an attached
// artifact's content).
func firstLayer(ctx context.Context, p *remote.Puller, ref name.Digest) ([]byte, error) {
	desc, err := p.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if len(m.Layers) == 0 {
		return nil, errors.New("manifest has no layer")
	}
	if m.Layers[0].Size > maxArtifact {
		return nil, fmt.Errorf("layer of %d bytes is too large for an attestation", m.Layers[0].Size)
	}
	l, err := p.Layer(ctx, ref.Context().Digest(m.Layers[0].Digest.String()))
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxArtifact))
}

// rawManifest is a manifest pushed as its bytes.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// pushReferrer attaches data to img as an OCI 1.1 artifact (empty config,
// one layer) and returns its manifest digest. go-containerregistry also
// keeps the referrers tag index of a registry without the referrers API.
func pushReferrer(ctx context.Context, img Image, artifactType string, data []byte, annotations map[string]string) (string, error) {
	opts := append(slices.Clone(img.Options), remote.WithContext(ctx))
	sub, err := remote.Head(img.Ref, opts...)
	if err != nil {
		return "", fmt.Errorf("attach to %s: %w", img.Ref, err)
	}
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(data, types.MediaType(artifactType))
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType,
		Subject:     &v1.Descriptor{MediaType: sub.MediaType, Digest: sub.Digest, Size: sub.Size},
		Annotations: annotations,
	}
	for i, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(img.Ref.Context(), l, opts...); err != nil {
			return "", fmt.Errorf("attach to %s: push blob: %w", img.Ref, err)
		}
		h, _ := l.Digest()
		size, _ := l.Size()
		mt, _ := l.MediaType()
		desc := v1.Descriptor{MediaType: mt, Digest: h, Size: size}
		if i == 0 {
			m.Config = desc
		} else {
			m.Layers = []v1.Descriptor{desc}
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	if err := remote.Put(img.Ref.Context().Digest(h.String()), rawManifest{raw, types.OCIManifestSchema1}, opts...); err != nil {
		return "", fmt.Errorf("attach to %s: push manifest: %w", img.Ref, err)
	}
	return h.String(), nil
}
