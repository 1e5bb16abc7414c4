package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/dir"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// NotationSignatureType is the artifact type of a Notation signature
// manifest (an OCI 1.1 referrer of the image it signs).
const NotationSignatureType = "application/vnd.cncf.notary.signature"

// Limits on what the registry hands over: notation's own (a signature
// envelope is at most 32 MiB), and how many signatures are tried before
// giving up, so that an image with thousands of referrers cannot hold a
// promotion.
const (
	notationMaxEnvelope   = 32 << 20
	notationMaxSignatures = 50
)

type notationPolicy struct {
	name     string
	doc      *trustpolicy.Document
	verifier notation.Verifier
}

// buildNotation reads the trust policy and the trust store now, so that a
// policy naming a store that does not exist, or a store without
// certificates, fails at load rather than at the first promotion.
func buildNotation(name string, p config.VerifyPolicy) (Policy, error) {
	n := p.Notation
	if n.TrustStore == "" {
		return nil, errors.New("trustStore: required (a directory holding x509/{ca,signingAuthority,tsa}/<name>/*.pem)")
	}
	if n.TrustPolicy == "" {
		return nil, errors.New("trustPolicy: required (a notation trustpolicy.json)")
	}
	st, err := os.Stat(n.TrustStore)
	if err != nil {
		return nil, fmt.Errorf("trustStore: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("trustStore: %s is not a directory", n.TrustStore)
	}
	raw, err := os.ReadFile(n.TrustPolicy)
	if err != nil {
		return nil, fmt.Errorf("trustPolicy: %w", err)
	}
	var doc trustpolicy.Document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("trustPolicy %s: not a trust policy document: %w", n.TrustPolicy, err)
	}
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("trustPolicy %s: %w", n.TrustPolicy, err)
	}
	store := truststore.NewX509TrustStore(trustStoreFS{FS: os.DirFS(n.TrustStore), root: n.TrustStore})
	for _, s := range doc.TrustPolicies {
		if lvl, _ := s.SignatureVerification.GetVerificationLevel(); reflect.DeepEqual(lvl, trustpolicy.LevelSkip) {
			continue // validated by notation: a skip statement names no store
		}
		for _, ts := range s.TrustStores {
			typ, named, _ := strings.Cut(ts, ":")
			if _, err := store.GetCertificates(context.Background(), truststore.Type(typ), named); err != nil {
				return nil, fmt.Errorf("trustPolicy %s: statement %q: trust store %s in %s: %w", n.TrustPolicy, s.Name, ts, n.TrustStore, err)
			}
		}
	}
	v, err := verifier.NewWithOptions(&doc, store, nil, verifier.VerifierOptions{})
	if err != nil {
		return nil, fmt.Errorf("trustPolicy %s: %w", n.TrustPolicy, err)
	}
	return &notationPolicy{name: name, doc: &doc, verifier: v}, nil
}

func (p *notationPolicy) Name() string { return p.name }
func (p *notationPolicy) Kind() string { return "notation" }

// Verify checks the image's Notation signatures (OCI 1.1 referrers, or the
// referrers tag schema on registries without the API) with notation-go.
// The registry is read with go-containerregistry and img.Options, so
// credentials and transport are those of the copy that follows.
func (p *notationPolicy) Verify(ctx context.Context, img Image) (events.Verified, error) {
	ref := notationReference(img.Ref)
	fail := func(format string, args ...any) (events.Verified, error) {
		return events.Verified{}, &Failure{Policy: p.name, Reason: fmt.Sprintf(format, args...)}
	}
	// Asked first so that an image outside every scope is refused as such,
	// without reading the registry.
	statement, err := p.doc.GetApplicableTrustPolicy(ref)
	if err != nil {
		return fail("no trust policy applies to %s (registryScopes: %s)", img.Ref.Context().Name(), strings.Join(p.scopes(), ", "))
	}
	puller, err := remote.NewPuller(img.Options...)
	if err != nil {
		return events.Verified{}, err
	}
	repo := &notationRepository{repo: img.Ref.Context(), puller: puller}
	rec := &recordingVerifier{Verifier: p.verifier}
	_, outcomes, err := notation.Verify(ctx, rec, repo, notation.VerifyOptions{
		ArtifactReference:    ref,
		MaxSignatureAttempts: notationMaxSignatures,
	})
	if rerr := repo.error(); rerr != nil {
		// The registry did not answer: the check was not made.
		return events.Verified{}, fmt.Errorf("notation: reading the signatures of %s: %w", img.Ref, rerr)
	}
	if err == nil {
		v := events.Verified{Policy: p.name, Kind: p.Kind()}
		if len(outcomes) == 1 && outcomes[0].EnvelopeContent != nil {
			if chain := outcomes[0].EnvelopeContent.SignerInfo.CertificateChain; len(chain) > 0 {
				v.Identity = chain[0].Subject.String()
				v.Issuer = chain[0].Issuer.String()
			}
		}
		return v, nil
	}
	if repo.signatures() == 0 {
		return fail("no Notation signature on %s", img.Ref.DigestStr())
	}
	reasons := make([]string, 0, len(rec.outcomes()))
	for _, o := range rec.outcomes() {
		reasons = append(reasons, describeOutcome(o, img.Ref.DigestStr(), statement))
	}
	switch len(reasons) {
	case 0:
		return fail("%v", err)
	case 1:
		return fail("%s", reasons[0])
	default:
		return fail("none of %d Notation signatures is accepted: %s", len(reasons), strings.Join(reasons, "; "))
	}
}

func (p *notationPolicy) scopes() []string {
	var out []string
	for _, s := range p.doc.TrustPolicies {
		out = append(out, s.RegistryScopes...)
	}
	return out
}

// notationReference spells img as notation's trust policy scopes do: the
// registry as written in references (docker.io, not go-containerregistry's
// index.docker.io), the repository and the digest.
func notationReference(d name.Digest) string {
	reg := d.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + d.Context().RepositoryStr() + "@" + d.DigestStr()
}

// describeOutcome says why one signature attached to subject (a digest)
// was not accepted, from the check that failed and the signing
// certificate.
func describeOutcome(o *notation.VerificationOutcome, subject string, statement *trustpolicy.TrustPolicy) string {
	if o.EnvelopeContent == nil {
		return fmt.Sprintf("not a valid Notation signature: %v", o.Error)
	}
	chain := o.EnvelopeContent.SignerInfo.CertificateChain
	signer := "an unknown signer"
	if len(chain) > 0 {
		signer = chain[0].Subject.String()
	}
	var failed *notation.ValidationResult
	for _, r := range o.VerificationResults {
		if r.Error != nil && r.Action == trustpolicy.ActionEnforce {
			failed = r
		}
	}
	if failed == nil {
		// Every check of the signature passed, so what failed is after
		// them: the payload names another image than the one it is
		// attached to (notation says only "content descriptor mismatch").
		var payload struct {
			TargetArtifact ocispec.Descriptor `json:"targetArtifact"`
		}
		if json.Unmarshal(o.EnvelopeContent.Payload.Content, &payload) == nil && payload.TargetArtifact.Digest.String() != subject {
			return fmt.Sprintf("signature by %s signs another image (%s)", signer, payload.TargetArtifact.Digest)
		}
		return fmt.Sprintf("signature by %s: %v", signer, o.Error)
	}
	switch failed.Type {
	case trustpolicy.TypeIntegrity:
		return fmt.Sprintf("signature by %s is corrupt: %v", signer, failed.Error)
	case trustpolicy.TypeAuthenticity:
		var authn *signature.SignatureAuthenticityError
		if errors.As(failed.Error, &authn) {
			return fmt.Sprintf("signature by %s chains to no CA in trust store %s", signer, strings.Join(statement.TrustStores, ", "))
		}
		if strings.Contains(failed.Error.Error(), "trusted identit") {
			return fmt.Sprintf("signature by %s is not by a trusted identity of trust policy %q (%s)", signer, statement.Name, strings.Join(statement.TrustedIdentities, "; "))
		}
		return fmt.Sprintf("signature by %s: %v", signer, failed.Error)
	case trustpolicy.TypeAuthenticTimestamp:
		now := time.Now()
		for _, c := range chain {
			if now.After(c.NotAfter) {
				if c == chain[0] {
					return fmt.Sprintf("the signing certificate %s expired at %s", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
				}
				return fmt.Sprintf("signature by %s: certificate %s of its chain expired at %s", signer, c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
			}
			if now.Before(c.NotBefore) {
				return fmt.Sprintf("signature by %s: certificate %s is not valid before %s", signer, c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
			}
		}
		return fmt.Sprintf("signature by %s has no valid timestamp: %v", signer, failed.Error)
	case trustpolicy.TypeExpiry:
		return fmt.Sprintf("signature by %s expired at %s", signer, o.EnvelopeContent.SignerInfo.SignedAttributes.Expiry.UTC().Format(time.RFC3339))
	case trustpolicy.TypeRevocation:
		return fmt.Sprintf("signature by %s: a certificate of its chain is revoked or its revocation could not be checked: %v", signer, failed.Error)
	}
	return fmt.Sprintf("signature by %s: %v", signer, failed.Error)
}

// recordingVerifier keeps the outcome of every signature notation tried:
// notation.Verify returns only the successful one, and the failures are
// what an operator needs to read.
type recordingVerifier struct {
	notation.Verifier
	mu  sync.Mutex
	all []*notation.VerificationOutcome
}

func (r *recordingVerifier) Verify(ctx context.Context, desc ocispec.Descriptor, sig []byte, opts notation.VerifierVerifyOptions) (*notation.VerificationOutcome, error) {
	o, err := r.Verifier.Verify(ctx, desc, sig, opts)
	if o != nil && err != nil {
		r.mu.Lock()
		r.all = append(r.all, o)
		r.mu.Unlock()
	}
	return o, err
}

// SkipVerify passes notation's "skip" level check on (notation looks for
// it on the verifier it is given).
func (r *recordingVerifier) SkipVerify(ctx context.Context, opts notation.VerifierVerifyOptions) (bool, *trustpolicy.VerificationLevel, error) {
	if s, ok := r.Verifier.(interface {
		SkipVerify(context.Context, notation.VerifierVerifyOptions) (bool, *trustpolicy.VerificationLevel, error)
	}); ok {
		return s.SkipVerify(ctx, opts)
	}
	return false, nil, nil
}

func (r *recordingVerifier) outcomes() []*notation.VerificationOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all
}

// trustStoreFS is the configured trust store directory as notation-go
// expects its configuration directory: notation looks certificates up
// under truststore/x509/<type>/<name>, the configured directory is what
// holds x509/.
type trustStoreFS struct {
	fs.FS
	root string
}

func (t trustStoreFS) SysPath(items ...string) (string, error) {
	p := filepath.Join(items...)
	if rel, ok := strings.CutPrefix(p, dir.TrustStoreDir+string(filepath.Separator)); ok {
		p = rel
	}
	return filepath.Join(t.root, p), nil
}

// notationRepository is notation-go's registry.Repository read with
// go-containerregistry (and so with the image's credentials and
// transport, and the referrers tag schema fallback). It only reads:
// verification pushes nothing. The first registry error is kept so that
// it is told apart from an image without signatures, which notation
// reports alike.
type notationRepository struct {
	repo   name.Repository
	puller *remote.Puller

	mu     sync.Mutex
	err    error
	listed int
}

func (r *notationRepository) failed(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	return err
}

func (r *notationRepository) error() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *notationRepository) signatures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listed
}

func (r *notationRepository) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	d, err := r.puller.Head(ctx, r.repo.Digest(reference))
	if err != nil {
		return ocispec.Descriptor{}, r.failed(err)
	}
	return ocispecDescriptor(*d), nil
}

func (r *notationRepository) ListSignatures(ctx context.Context, desc ocispec.Descriptor, fn func([]ocispec.Descriptor) error) error {
	subject := r.repo.Digest(desc.Digest.String())
	refs, err := oci.OCIReferrers(ctx, subject, r.puller)
	if err != nil {
		return r.failed(err)
	}
	var sigs []ocispec.Descriptor
	for _, d := range refs {
		at := d.ArtifactType
		if at == "" {
			// Not every referrers tag index records artifactType; the
			// manifest says.
			m, err := r.puller.Get(ctx, r.repo.Digest(d.Digest.String()))
			if err != nil {
				return r.failed(err)
			}
			at = m.ArtifactType
		}
		if at == NotationSignatureType {
			sigs = append(sigs, ocispecDescriptor(d))
		}
	}
	if len(sigs) == 0 {
		return nil
	}
	r.mu.Lock()
	r.listed += len(sigs)
	r.mu.Unlock()
	return fn(sigs)
}

func (r *notationRepository) FetchSignatureBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, ocispec.Descriptor, error) {
	m, err := r.puller.Get(ctx, r.repo.Digest(desc.Digest.String()))
	if err != nil {
		return nil, ocispec.Descriptor{}, r.failed(err)
	}
	var manifest v1.Manifest
	if err := json.Unmarshal(m.Manifest, &manifest); err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature manifest %s: %w", desc.Digest, err)
	}
	// A malformed signature is the signer's problem, not the registry's:
	// notation reports it on the signature, which stays a failure.
	if len(manifest.Layers) != 1 {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature manifest %s has %d layers, a Notation signature has 1", desc.Digest, len(manifest.Layers))
	}
	blob := manifest.Layers[0]
	if blob.Size > notationMaxEnvelope {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature envelope %s is %d bytes, more than %d", blob.Digest, blob.Size, notationMaxEnvelope)
	}
	layer, err := r.puller.Layer(ctx, r.repo.Digest(blob.Digest.String()))
	if err != nil {
		return nil, ocispec.Descriptor{}, r.failed(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, ocispec.Descriptor{}, r.failed(err)
	}
	defer rc.Close()
	// Compressed checks the digest as it reads.
	raw, err := io.ReadAll(io.LimitReader(rc, notationMaxEnvelope+1))
	if err != nil {
		return nil, ocispec.Descriptor{}, r.failed(err)
	}
	return raw, ocispecDescriptor(blob), nil
}

func (r *notationRepository) PushSignature(context.Context, string, []byte, ocispec.Descriptor, map[string]string) (ocispec.Descriptor, ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, ocispec.Descriptor{}, errors.New("verification does not push signatures")
}

func ocispecDescriptor(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    string(d.MediaType),
		Digest:       digest.Digest(d.Digest.String()),
		Size:         d.Size,
		Annotations:  d.Annotations,
		ArtifactType: d.ArtifactType,
	}
}
