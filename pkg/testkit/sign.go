package testkit

import (
	"crypto"
	"crypto/ecdsa"
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
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"google.golang.org/protobuf/encoding/protojson"
)

// What cosign writes, in the tag scheme and as OCI 1.1 referrers.
const (
	// SigstoreBundleMediaType is a Sigstore bundle (protobuf-specs v0.3):
	// the artifactType and layer media type of cosign's referrer form.
	SigstoreBundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// CosignCertificateAnnotation and CosignChainAnnotation hold a keyless
	// signature's certificate and its chain (PEM) on a tag-scheme layer.
	CosignCertificateAnnotation = "dev.sigstore.cosign/certificate"
	CosignChainAnnotation       = "dev.sigstore.cosign/chain"
	// CosignTimestampAnnotation holds an RFC 3161 timestamp over the
	// signature: {"SignedRFC3161Timestamp": "<base64 DER>"}.
	CosignTimestampAnnotation = "dev.sigstore.cosign/rfc3161timestamp"
	// CosignDSSEMediaType is the layer media type of a tag-scheme
	// attestation (.att): a DSSE envelope.
	CosignDSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// BundleContentAnnotation and BundlePredicateTypeAnnotation are on a
	// referrer bundle's manifest: what it holds and, for an attestation,
	// the in-toto predicate type.
	BundleContentAnnotation       = "dev.sigstore.bundle.content"
	BundlePredicateTypeAnnotation = "dev.sigstore.bundle.predicateType"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
)

// GenerateKey returns a new ECDSA P-256 key, the kind `cosign
// generate-key-pair` makes, and its public key in PEM (what a policy's
// key names).
func GenerateKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testkit: generate key: %v", err)
	}
	return k, PublicKeyPEM(t, k.Public())
}

// PublicKeyPEM is pub as a PEM "PUBLIC KEY" block.
func PublicKeyPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("testkit: marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// SignOption changes what a signing helper signs.
type SignOption func(*signOptions)

type signOptions struct{ digest string }

// OverDigest signs digest ("sha256:…") instead of the image's own, while
// still attaching the signature to the image: a valid signature by the
// right key over another image.
func OverDigest(digest string) SignOption {
	return func(o *signOptions) { o.digest = digest }
}

func signedDigest(ref name.Digest, opts []SignOption) string {
	o := signOptions{digest: ref.DigestStr()}
	for _, opt := range opts {
		opt(&o)
	}
	return o.digest
}

// KeylessSigner is a short-lived key certified by a Sigstore's test
// Fulcio CA for one identity. It is a crypto.Signer, so every signing
// helper takes it where it takes a key; they then attach its certificate
// and a timestamp from the Sigstore's TSA, as cosign does keyless.
type KeylessSigner struct {
	crypto.Signer
	Cert  *x509.Certificate
	Chain []*x509.Certificate // intermediates, then the root
	ss    *Sigstore
}

// sign signs data (hashed with SHA-256) with key.
func sign(t testing.TB, key crypto.Signer, data []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(data)
	return signDigest(t, key, sum[:])
}

func signDigest(t testing.TB, key crypto.Signer, sum []byte) []byte {
	t.Helper()
	sig, err := key.Sign(rand.Reader, sum, crypto.SHA256)
	if err != nil {
		t.Fatalf("testkit: sign: %v", err)
	}
	return sig
}

// material is the bundle's verification material for key: a public-key
// hint (the key's fingerprint) for a key, the certificate and a signed
// timestamp over sig for a keyless signer.
func material(t testing.TB, key crypto.Signer, sig []byte) *protobundle.VerificationMaterial {
	t.Helper()
	ks, ok := key.(*KeylessSigner)
	if !ok {
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatalf("testkit: marshal public key: %v", err)
		}
		sum := sha256.Sum256(der)
		return &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_PublicKey{
			PublicKey: &protocommon.PublicKeyIdentifier{Hint: base64.StdEncoding.EncodeToString(sum[:])},
		}}
	}
	return &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: ks.Cert.Raw}},
		TimestampVerificationData: &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ks.ss.timestamp(t, sig)}},
		},
	}
}

// tagAnnotations are a tag-scheme layer's annotations for sig by key:
// the signature, and for a keyless signer its certificate, chain and
// timestamp.
func tagAnnotations(t testing.TB, key crypto.Signer, sig []byte) map[string]string {
	t.Helper()
	a := map[string]string{CosignSignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}
	if ks, ok := key.(*KeylessSigner); ok {
		a[CosignCertificateAnnotation] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ks.Cert.Raw}))
		var chain []byte
		for _, c := range ks.Chain {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		a[CosignChainAnnotation] = string(chain)
		ts, err := json.Marshal(map[string]string{"SignedRFC3161Timestamp": base64.StdEncoding.EncodeToString(ks.ss.timestamp(t, sig))})
		if err != nil {
			t.Fatal(err)
		}
		a[CosignTimestampAnnotation] = string(ts)
	}
	return a
}

// simpleSigningPayload is cosign's signed payload for the image ref names,
// claiming digest.
func simpleSigningPayload(t testing.TB, ref name.Digest, digest string) []byte {
	t.Helper()
	payload, err := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": ref.Context().String()},
			"image":    map[string]string{"docker-manifest-digest": digest},
			"type":     "cosign container image signature",
		},
		"optional": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// appendTagLayer adds a layer to the image under the tag (cosign's
// sha256-<hex>.<suffix>), creating it when absent: cosign keeps every
// signature of an image as one layer of that image. It returns the tag's
// new manifest digest.
func appendTagLayer(t testing.TB, ref name.Digest, suffix string, layer v1.Layer, annotations map[string]string) string {
	t.Helper()
	tag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + "." + suffix)
	img, err := remote.Image(tag, RemoteOptions(t)...)
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		img = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	case err != nil:
		t.Fatalf("testkit: get %s: %v", tag, err)
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, Annotations: annotations})
	if err != nil {
		t.Fatalf("testkit: append to %s: %v", tag, err)
	}
	return PushImage(t, tag.String(), img)
}

// CosignSignTag signs the image ref with key as `cosign sign` does in the
// tag scheme: a simple-signing payload naming the digest, signed, as a
// layer of sha256-<hex>.sig in the image's repository (appended when the
// image already has signatures). key may be a *KeylessSigner. It returns
// the .sig manifest's digest.
func CosignSignTag(t testing.TB, ref name.Digest, key crypto.Signer, opts ...SignOption) string {
	t.Helper()
	payload := simpleSigningPayload(t, ref, signedDigest(ref, opts))
	sig := sign(t, key, payload)
	return appendTagLayer(t, ref, "sig", static.NewLayer(payload, CosignSimpleSigningMediaType), tagAnnotations(t, key, sig))
}

// CosignSignBundle signs the image ref with key as `cosign sign` does in
// the OCI 1.1 referrers mode: a Sigstore bundle holding a message
// signature over the image's digest, attached as a referrer of the image.
// key may be a *KeylessSigner (the bundle then holds its certificate and a
// timestamp). It returns the referrer's digest.
func CosignSignBundle(t testing.TB, ref name.Digest, key crypto.Signer, opts ...SignOption) string {
	t.Helper()
	h, err := v1.NewHash(signedDigest(ref, opts))
	if err != nil {
		t.Fatalf("testkit: CosignSignBundle: %v", err)
	}
	sum, err := hex.DecodeString(h.Hex)
	if err != nil {
		t.Fatal(err)
	}
	// The manifest's SHA-256 is the signed message's hash: the signature
	// is over the manifest, which the digest stands for.
	sig := signDigest(t, key, sum)
	b := &protobundle.Bundle{
		MediaType:            SigstoreBundleMediaType,
		VerificationMaterial: material(t, key, sig),
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum},
			Signature:     sig,
		}},
	}
	return pushBundle(t, ref, b, map[string]string{BundleContentAnnotation: "message-signature"})
}

func pushBundle(t testing.TB, ref name.Digest, b *protobundle.Bundle, annotations map[string]string) string {
	t.Helper()
	raw, err := protojson.Marshal(b)
	if err != nil {
		t.Fatalf("testkit: marshal bundle: %v", err)
	}
	return PushAnnotatedReferrer(t, ref.String(), SigstoreBundleMediaType, SigstoreBundleMediaType, raw, annotations)
}

// dsseEnvelope signs statement (an in-toto statement) with key in a DSSE
// envelope: the signature is over the pre-authentication encoding.
func dsseEnvelope(t testing.TB, key crypto.Signer, statement []byte) (*protodsse.Envelope, []byte) {
	t.Helper()
	pae := fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(InTotoPayloadType), InTotoPayloadType, len(statement), statement)
	sig := sign(t, key, pae)
	return &protodsse.Envelope{
		Payload:     statement,
		PayloadType: InTotoPayloadType,
		Signatures:  []*protodsse.Signature{{Sig: sig}},
	}, sig
}

// predicateType is the statement's predicateType.
func predicateType(t testing.TB, statement []byte) string {
	t.Helper()
	var s struct {
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(statement, &s); err != nil {
		t.Fatalf("testkit: statement is not JSON: %v", err)
	}
	return s.PredicateType
}

// AttestBundle signs statement (an in-toto statement, e.g. SLSA
// provenance naming the image as its subject) with key in a DSSE envelope
// and attaches it to the image ref as a Sigstore bundle referrer, its
// predicate type in the manifest's annotations, as `cosign attest` does
// in the referrers mode. key may be a *KeylessSigner. It returns the
// referrer's digest.
func AttestBundle(t testing.TB, ref name.Digest, statement []byte, key crypto.Signer) string {
	t.Helper()
	env, sig := dsseEnvelope(t, key, statement)
	b := &protobundle.Bundle{
		MediaType:            SigstoreBundleMediaType,
		VerificationMaterial: material(t, key, sig),
		Content:              &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env},
	}
	return pushBundle(t, ref, b, map[string]string{
		BundleContentAnnotation:       "dsse-envelope",
		BundlePredicateTypeAnnotation: predicateType(t, statement),
	})
}

// AttestTag is AttestBundle in cosign's tag scheme: the DSSE envelope as
// a layer of sha256-<hex>.att, the predicate type in the layer's
// annotations. It returns the .att manifest's digest.
func AttestTag(t testing.TB, ref name.Digest, statement []byte, key crypto.Signer) string {
	t.Helper()
	env, sig := dsseEnvelope(t, key, statement)
	raw, err := json.Marshal(map[string]any{
		"payloadType": env.PayloadType,
		"payload":     base64.StdEncoding.EncodeToString(env.Payload),
		"signatures":  []map[string]string{{"keyid": "", "sig": base64.StdEncoding.EncodeToString(env.Signatures[0].Sig)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := tagAnnotations(t, key, sig)
	// The tag scheme's envelope carries its own signature; the layer's
	// annotation is empty, as cosign writes it.
	a[CosignSignatureAnnotation] = ""
	a["predicateType"] = predicateType(t, statement)
	return appendTagLayer(t, ref, "att", static.NewLayer(raw, CosignDSSEMediaType), a)
}

// Sigstore is a test Sigstore (sigstore-go's VirtualSigstore): a Fulcio
// CA that certifies identities, and a timestamp authority.
type Sigstore struct {
	vs *ca.VirtualSigstore
}

// NewSigstore starts a test Sigstore with its own keys: another
// NewSigstore's certificates do not verify against this one's root.
func NewSigstore(t testing.TB) *Sigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatalf("testkit: virtual sigstore: %v", err)
	}
	return &Sigstore{vs: vs}
}

// TrustedRootJSON writes the Sigstore's trusted root (its Fulcio CA and
// timestamp authority; no transparency log, so signed timestamps are what
// vouch for a signature's time) to a temporary file and returns its path.
func (s *Sigstore) TrustedRootJSON(t testing.TB) string {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, s.vs.FulcioCertificateAuthorities(), nil, s.vs.TimestampingAuthorities(), nil)
	if err != nil {
		t.Fatalf("testkit: trusted root: %v", err)
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		t.Fatalf("testkit: marshal trusted root: %v", err)
	}
	path := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Identity is a new short-lived key certified for identity (an e-mail
// subject alternative name) as issued by the OIDC issuer.
func (s *Sigstore) Identity(t testing.TB, identity, issuer string) *KeylessSigner {
	t.Helper()
	cert, priv, err := s.vs.GenerateLeafCert(identity, issuer)
	if err != nil {
		t.Fatalf("testkit: certify %s: %v", identity, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		t.Fatalf("testkit: the leaf key %T is not a crypto.Signer", priv)
	}
	cas := s.vs.FulcioCertificateAuthorities()
	fulcio, ok := cas[0].(*root.FulcioCertificateAuthority)
	if !ok {
		t.Fatalf("testkit: unexpected certificate authority %T", cas[0])
	}
	chain := append(append([]*x509.Certificate{}, fulcio.Intermediates...), fulcio.Root)
	return &KeylessSigner{Signer: signer, Cert: cert, Chain: chain, ss: s}
}

// SignKeyless signs the image ref keyless as identity from issuer and
// attaches the bundle as a referrer (CosignSignBundle with Identity). It
// returns the referrer's digest.
func (s *Sigstore) SignKeyless(t testing.TB, ref name.Digest, identity, issuer string, opts ...SignOption) string {
	t.Helper()
	return CosignSignBundle(t, ref, s.Identity(t, identity, issuer), opts...)
}

func (s *Sigstore) timestamp(t testing.TB, sig []byte) []byte {
	t.Helper()
	tsr, err := s.vs.TimestampResponse(sig)
	if err != nil {
		t.Fatalf("testkit: timestamp: %v", err)
	}
	return tsr
}
