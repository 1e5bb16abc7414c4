package verify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// SLSAProvenanceType is the predicate type of SLSA v1 provenance.
const SLSAProvenanceType = "https://slsa.dev/provenance/v1"

// slsaProvenance is the part of a SLSA v1 provenance predicate a policy
// checks.
type slsaProvenance struct {
	BuildDefinition struct {
		BuildType          string `json:"buildType"`
		ExternalParameters struct {
			// GitHub Actions' build type names the workflow's repository
			// and ref.
			Workflow struct {
				Repository string `json:"repository"`
				Ref        string `json:"ref"`
			} `json:"workflow"`
		} `json:"externalParameters"`
		ResolvedDependencies []struct {
			URI string `json:"uri"`
		} `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
	} `json:"runDetails"`
}

// normRepo is a repository URI as compared: without git+, the scheme, a
// trailing .git or slash, in lower case (github.com/org/repo).
func normRepo(u string) string {
	u = strings.TrimPrefix(strings.TrimSpace(u), "git+")
	if _, rest, ok := strings.Cut(u, "://"); ok {
		u = rest
	}
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	return strings.ToLower(u)
}

// sourceOf is the provenance's source repository and ref: the workflow's
// (GitHub Actions) or the first resolved dependency's
// ("git+https://github.com/org/repo@refs/heads/main").
func (p slsaProvenance) sourceOf() (repo, ref string) {
	if w := p.BuildDefinition.ExternalParameters.Workflow; w.Repository != "" {
		return normRepo(w.Repository), w.Ref
	}
	if deps := p.BuildDefinition.ResolvedDependencies; len(deps) > 0 {
		uri := deps[0].URI
		if i := strings.LastIndex(uri, "@"); i > strings.Index(uri, "://") {
			return normRepo(uri[:i]), uri[i+1:]
		}
		return normRepo(uri), ""
	}
	return "", ""
}

// checkProvenance checks a verified in-toto statement against the policy:
// about digest, SLSA v1 provenance, an allowed builder, the source (and
// ref) and build type wanted. It returns the builder and the source, or in
// words why the statement does not pass.
func checkProvenance(payload []byte, digest string, pol config.ProvenancePolicy) (builder, source, why string) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return "", "", "the attestation is not an in-toto statement"
	}
	if st.PredicateType != SLSAProvenanceType {
		return "", "", fmt.Sprintf("no SLSA v1 provenance attestation (found a %s attestation)", st.PredicateType)
	}
	if !st.about(digest) {
		return "", "", fmt.Sprintf("provenance is about another image (%s)", st.subjectDigests())
	}
	var p slsaProvenance
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		return "", "", "the provenance is not SLSA v1: " + err.Error()
	}
	builder = p.RunDetails.Builder.ID
	if !slices.Contains(pol.BuilderIDs, builder) {
		return "", "", fmt.Sprintf("built by %s, want one of %s", orNone(builder), strings.Join(pol.BuilderIDs, ", "))
	}
	repo, ref := p.sourceOf()
	if want := normRepo(pol.SourceRepository); want != "" && repo != want {
		return "", "", fmt.Sprintf("built from %s, want %s", orNone(repo), want)
	}
	if pol.SourceRef != "" && ref != pol.SourceRef {
		return "", "", fmt.Sprintf("built from ref %s of %s, want %s", orNone(ref), repo, pol.SourceRef)
	}
	if pol.BuildType != "" && p.BuildDefinition.BuildType != pol.BuildType {
		return "", "", fmt.Sprintf("build type %s, want %s", orNone(p.BuildDefinition.BuildType), pol.BuildType)
	}
	source = repo
	if ref != "" {
		source += "@" + ref
	}
	return builder, source, ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// dsseMediaType is the layer media type of cosign's tag-scheme
// attestations (.att): a DSSE envelope.
const dsseMediaType = "application/vnd.dsse.envelope.v1+json"

// provenancePolicy accepts an image with a SLSA v1 provenance attestation
// about its digest, signed as its cosign part says, whose builder, source
// and build type the policy allows.
type provenancePolicy struct {
	name   string
	signed *cosignPolicy
	want   config.ProvenancePolicy
}

func buildProvenance(name string, p config.VerifyPolicy) (Policy, error) {
	pp := *p.Provenance
	if len(pp.BuilderIDs) == 0 {
		return nil, fmt.Errorf("builderIds: name at least one builder allowed")
	}
	signed, err := newCosign(name, pp.CosignPolicy)
	if err != nil {
		return nil, err
	}
	return &provenancePolicy{name: name, signed: signed, want: pp}, nil
}

func (p *provenancePolicy) Name() string { return p.name }
func (p *provenancePolicy) Kind() string { return "provenance" }

// attestation is one DSSE envelope found attached to the image, and the
// entity sigstore-go verifies it as.
type attestation struct {
	where    string
	envelope *protodsse.Envelope
	entity   sgverify.SignedEntity
	err      error // the attestation could not be read
}

// unsigned reports whether the envelope carries no signature at all.
func (a attestation) unsigned() bool {
	return !slices.ContainsFunc(a.envelope.GetSignatures(), func(s *protodsse.Signature) bool { return len(s.GetSig()) > 0 })
}

func (p *provenancePolicy) Verify(ctx context.Context, img Image) (events.Verified, error) {
	atts, err := provenanceAttestations(ctx, img)
	if err != nil {
		return events.Verified{}, err
	}
	var (
		reasons    []string // signed provenance that does not pass
		identities []string // signed by an identity not wanted
		badSig     int
		firstErr   error
		unsigned   int
	)
	for _, a := range atts {
		switch {
		case a.err != nil:
			badSig++
			firstErr = cmpOr(firstErr, fmt.Errorf("%s: %w", a.where, a.err))
			continue
		case a.unsigned():
			unsigned++
			continue
		}
		res, err := p.signed.verifyEntity(a.entity, sgverify.WithoutArtifactUnsafe())
		if err != nil {
			badSig++
			firstErr = cmpOr(firstErr, fmt.Errorf("%s: %w", a.where, err))
			continue
		}
		signer, other := p.signed.signer(res)
		if other != "" {
			identities = append(identities, other)
			continue
		}
		if signer.Identity == "" {
			continue
		}
		builder, source, why := checkProvenance(a.envelope.GetPayload(), img.Ref.DigestStr(), p.want)
		if why != "" {
			reasons = append(reasons, why)
			continue
		}
		signer.Policy, signer.Kind, signer.Builder, signer.Source = p.name, "provenance", builder, source
		return signer, nil
	}
	return events.Verified{}, p.refusal(img, len(atts), reasons, identities, badSig, firstErr, unsigned)
}

// refusal says why none of n provenance attestations passes: the first
// reason of one signed as wanted, else whose signatures they carry.
func (p *provenancePolicy) refusal(img Image, n int, reasons, identities []string, badSig int, firstErr error, unsigned int) *Failure {
	fail := func(format string, args ...any) *Failure {
		return &Failure{Policy: p.name, Reason: fmt.Sprintf(format, args...)}
	}
	count := ""
	if n > 1 {
		count = fmt.Sprintf(" (%s, none passes)", plural(n, "provenance attestation"))
	}
	switch {
	case n == 0:
		return fail("no SLSA v1 provenance attestation (looked for tag %s and referrers)",
			oci.CosignTag(img.Ref.DigestStr(), "att"))
	case len(reasons) > 0:
		return fail("%s%s", reasons[0], count)
	case len(identities) > 0:
		return fail("the provenance attestation is signed by %s, want %s%s", strings.Join(identities, "; "), p.signed.want, count)
	case badSig > 0 && p.signed.identity == nil:
		return fail("the provenance attestation is signed by another key (want %s)%s", p.signed.fingerprint, count)
	case badSig > 0:
		return fail("the provenance attestation's signature does not verify against the trusted root (%v)%s", firstErr, count)
	default:
		return fail("unsigned provenance: the attestation's envelope carries no signature%s", count)
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// provenanceAttestations are the DSSE envelopes attached to img, in the
// tag scheme (.att) and as referrer bundles, that say they hold SLSA v1
// provenance. What a payload says before its signature is checked only
// sorts attestations of other kinds out (a verification summary, an SBOM):
// it is trusted for nothing else.
func provenanceAttestations(ctx context.Context, img Image) ([]attestation, error) {
	layers, bundles, err := attachments(ctx, img, "att")
	if err != nil {
		return nil, err
	}
	var out []attestation
	for i, l := range layers {
		if l.MediaType != dsseMediaType || !mayBeProvenance(l.Annotations["predicateType"]) {
			continue
		}
		a := attestation{where: fmt.Sprintf("attestation %d of the .att tag", i+1)}
		var env Envelope
		err := json.Unmarshal(l.Content, &env)
		if err == nil {
			a.envelope, err = env.proto()
		}
		if err != nil {
			// Unreadable: counted only when it says it is provenance.
			if l.Annotations["predicateType"] == SLSAProvenanceType {
				a.err = fmt.Errorf("not a DSSE envelope: %w", err)
				out = append(out, a)
			}
			continue
		}
		if !isProvenance(a.envelope.GetPayload()) {
			continue
		}
		a.entity, a.err = entity(&protobundle.Bundle{
			MediaType:            BundleMediaType,
			Content:              &protobundle.Bundle_DsseEnvelope{DsseEnvelope: a.envelope},
			VerificationMaterial: tagMaterial(l.Annotations),
		})
		out = append(out, a)
	}
	for _, rb := range bundles {
		pt, annotated := rb.Annotations[BundlePredicateAnnot]
		if annotated && pt != SLSAProvenanceType {
			continue
		}
		a := attestation{where: "referrer " + rb.Digest}
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(rb.Content); err != nil {
			if annotated {
				a.err = err
				out = append(out, a)
			}
			continue
		}
		if a.envelope = b.GetDsseEnvelope(); a.envelope == nil {
			continue // a signature, not an attestation
		}
		a.entity = &b
		if isProvenance(a.envelope.GetPayload()) {
			out = append(out, a)
		}
	}
	return out, nil
}

// mayBeProvenance reports whether a tag layer's predicateType annotation
// (absent in some writers' layers) allows SLSA v1 provenance.
func mayBeProvenance(annotation string) bool {
	return annotation == "" || annotation == SLSAProvenanceType
}

// isProvenance reports whether an in-toto payload says it is SLSA v1
// provenance.
func isProvenance(payload []byte) bool {
	var st Statement
	return json.Unmarshal(payload, &st) == nil && st.PredicateType == SLSAProvenanceType
}

// proto is the envelope as a Sigstore bundle holds it (decoded payload and
// signatures).
func (e Envelope) proto() (*protodsse.Envelope, error) {
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("the envelope's payload is not base64: %w", err)
	}
	out := &protodsse.Envelope{Payload: payload, PayloadType: e.PayloadType}
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("an envelope's signature is not base64: %w", err)
		}
		out.Signatures = append(out.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	return out, nil
}
