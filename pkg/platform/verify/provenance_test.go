package verify

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

const (
	imageDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	ghBuilder   = "https://github.com/actions/runner/github-hosted"
)

// provenanceStatement is a SLSA v1 provenance statement about digest in
// the generic form (source as the first resolved dependency).
func provenanceStatement(t *testing.T, digest, builder, source, buildType string) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"_type":         InTotoStatementType,
		"subject":       []Subject{{Name: "registry.example/payments", Digest: map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}},
		"predicateType": SLSAProvenanceType,
		"predicate": map[string]any{
			"buildDefinition": map[string]any{
				"buildType":            buildType,
				"externalParameters":   map[string]any{},
				"resolvedDependencies": []map[string]any{{"uri": source}},
			},
			"runDetails": map[string]any{"builder": map[string]any{"id": builder}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestProvenanceChecksBuilderSourceRefAndBuildType(t *testing.T) {
	pol := config.ProvenancePolicy{
		BuilderIDs:       []string{ghBuilder},
		SourceRepository: "git+https://github.com/example/payments.git",
		SourceRef:        "refs/heads/main",
		BuildType:        "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
	}
	good := func() (string, string, string, string) {
		return imageDigest, ghBuilder, "git+https://github.com/example/payments@refs/heads/main", pol.BuildType
	}
	for _, tc := range []struct {
		name   string
		change func(d, b, s, bt *string)
		want   string
	}{
		{"right builder and source", func(_, _, _, _ *string) {}, ""},
		{"other builder", func(_, b, _, _ *string) { *b = "https://other-builder" }, "built by https://other-builder, want one of " + ghBuilder},
		{"other source", func(_, _, s, _ *string) { *s = "git+https://github.com/evil/repo@refs/heads/main" },
			"built from github.com/evil/repo, want github.com/example/payments"},
		{"other ref", func(_, _, s, _ *string) { *s = "git+https://github.com/example/payments@refs/heads/feature" },
			"built from ref refs/heads/feature of github.com/example/payments, want refs/heads/main"},
		{"other build type", func(_, _, _, bt *string) { *bt = "https://example.com/other" }, "build type https://example.com/other, want"},
		{"another image", func(d, _, _, _ *string) { *d = "sha256:" + strings.Repeat("2", 64) }, "provenance is about another image (sha256:2222"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, b, s, bt := good()
			tc.change(&d, &b, &s, &bt)
			builder, source, why := checkProvenance(provenanceStatement(t, d, b, s, bt), imageDigest, pol)
			switch {
			case tc.want == "" && why != "":
				t.Fatalf("refused: %s", why)
			case tc.want == "" && (builder != ghBuilder || source != "github.com/example/payments@refs/heads/main"):
				t.Errorf("builder %q, source %q", builder, source)
			case tc.want != "" && !strings.Contains(why, tc.want):
				t.Errorf("reason %q, want %q", why, tc.want)
			}
		})
	}
}

func TestProvenanceOfAnotherPredicateTypeIsNotProvenance(t *testing.T) {
	raw, _ := json.Marshal(Statement{Type: InTotoStatementType, PredicateType: VSAPredicateType,
		Subject: []Subject{{Digest: map[string]string{"sha256": strings.TrimPrefix(imageDigest, "sha256:")}}}, Predicate: json.RawMessage(`{}`)})
	_, _, why := checkProvenance(raw, imageDigest, config.ProvenancePolicy{BuilderIDs: []string{ghBuilder}})
	if !strings.HasPrefix(why, "no SLSA v1 provenance attestation") {
		t.Errorf("reason %q", why)
	}
}

type attestFunc = func(t testing.TB, ref name.Digest, statement []byte, key crypto.Signer) string

// attesters attach a signed in-toto statement in one of the two forms.
var attesters = []struct {
	form   string
	attest attestFunc
}{
	{"tag", testkit.AttestTag},
	{"referrer", testkit.AttestBundle},
}

const (
	mainSource = "git+https://github.com/example/payments@refs/heads/main"
	ghBuild    = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
)

// provenanceRule is a rule's provenance policy signed as cosign says.
func provenanceRule(t *testing.T, cosign config.CosignPolicy) Policy {
	t.Helper()
	return mustBuild(t, config.VerifyPolicy{Name: "built-by-ci", Provenance: &config.ProvenancePolicy{
		CosignPolicy:     cosign,
		BuilderIDs:       []string{ghBuilder},
		SourceRepository: "https://github.com/example/payments",
		SourceRef:        "refs/heads/main",
	}})
}

// attested is an image, new in a registry of its own, with the provenance
// of a build of source by builder attached as attest does, signed by
// signer.
func attested(t *testing.T, attest attestFunc, signer crypto.Signer, builder, source string) Image {
	t.Helper()
	img := pushed(t, testkit.NewRegistry(t, testkit.RegistryOptions{}), "apps/payments")
	attest(t, img.Ref, provenanceStatement(t, img.Ref.DigestStr(), builder, source, ghBuild), signer)
	return img
}

func TestProvenanceSignedByTheKeyFromAnAllowedBuilderAndSourcePasses(t *testing.T) {
	for _, a := range attesters {
		t.Run(a.form, func(t *testing.T) {
			key, pub := testkit.GenerateKey(t)
			img := attested(t, a.attest, key, ghBuilder, mainSource)
			got, err := provenanceRule(t, config.CosignPolicy{Key: string(pub)}).Verify(t.Context(), img)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			want := events.Verified{Policy: "built-by-ci", Kind: "provenance", Identity: fingerprint(t, key.Public()),
				Builder: ghBuilder, Source: "github.com/example/payments@refs/heads/main"}
			if got != want {
				t.Errorf("verified = %+v, want %+v", got, want)
			}
		})
	}
}

func TestProvenanceRefusesAStatementOfAnotherBuilderSourceRefOrImage(t *testing.T) {
	for _, a := range attesters {
		for _, tc := range []struct {
			name            string
			builder, source string
			otherImage      bool
			want            string
		}{
			{name: "other builder", builder: "https://other-builder", source: mainSource,
				want: "built by https://other-builder, want one of " + ghBuilder},
			{name: "other source", builder: ghBuilder, source: "git+https://github.com/evil/repo@refs/heads/main",
				want: "built from github.com/evil/repo, want github.com/example/payments"},
			{name: "other ref", builder: ghBuilder, source: "git+https://github.com/example/payments@refs/heads/feature",
				want: "built from ref refs/heads/feature of github.com/example/payments, want refs/heads/main"},
			{name: "another image", builder: ghBuilder, source: mainSource, otherImage: true,
				want: "provenance is about another image"},
		} {
			t.Run(a.form+"/"+tc.name, func(t *testing.T) {
				reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
				img := pushed(t, reg, "apps/payments")
				about := img.Ref.DigestStr()
				if tc.otherImage {
					about = pushed(t, reg, "apps/api").Ref.DigestStr()
				}
				key, pub := testkit.GenerateKey(t)
				a.attest(t, img.Ref, provenanceStatement(t, about, tc.builder, tc.source, ghBuild), key)
				_, err := provenanceRule(t, config.CosignPolicy{Key: string(pub)}).Verify(t.Context(), img)
				refusedFor(t, err, "verification policy built-by-ci: "+tc.want)
				if tc.otherImage {
					refusedFor(t, err, about)
				}
			})
		}
	}
}

func TestProvenanceRefusesAnAttestationSignedByAnotherKey(t *testing.T) {
	for _, a := range attesters {
		t.Run(a.form, func(t *testing.T) {
			other, _ := testkit.GenerateKey(t)
			img := attested(t, a.attest, other, ghBuilder, mainSource)
			key, pub := testkit.GenerateKey(t)
			_, err := provenanceRule(t, config.CosignPolicy{Key: string(pub)}).Verify(t.Context(), img)
			refusedFor(t, err, "the provenance attestation is signed by another key (want "+fingerprint(t, key.Public())+")")
		})
	}
}

func TestProvenanceRefusesAnImageWithoutProvenanceWhateverElseIsAttached(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/payments")
	key, pub := testkit.GenerateKey(t)
	rule := provenanceRule(t, config.CosignPolicy{Key: string(pub)})
	_, err := rule.Verify(t.Context(), img)
	refusedFor(t, err, "no SLSA v1 provenance attestation", strings.Replace(img.Ref.DigestStr(), ":", "-", 1)+".att")

	// A signature and an attestation of another kind, both by the key,
	// are not provenance.
	testkit.CosignSignTag(t, img.Ref, key)
	testkit.CosignSignBundle(t, img.Ref, key)
	vsa, _ := json.Marshal(Statement{Type: InTotoStatementType, PredicateType: VSAPredicateType,
		Subject: []Subject{{Digest: map[string]string{"sha256": img.Ref.DigestStr()[len("sha256:"):]}}}, Predicate: json.RawMessage(`{}`)})
	for _, a := range attesters {
		a.attest(t, img.Ref, vsa, key)
	}
	_, err = rule.Verify(t.Context(), img)
	refusedFor(t, err, "no SLSA v1 provenance attestation")
}

func TestProvenanceRefusesAnUnsignedAttestation(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/payments")
	_, pub := testkit.GenerateKey(t)
	statement := provenanceStatement(t, img.Ref.DigestStr(), ghBuilder, mainSource, ghBuild)
	// What cosign would attach with the signature left out: a bundle whose
	// DSSE envelope has no signatures.
	unsigned, err := json.Marshal(map[string]any{
		"mediaType":            testkit.SigstoreBundleMediaType,
		"verificationMaterial": map[string]any{"publicKey": map[string]any{"hint": ""}},
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString(statement),
			"payloadType": testkit.InTotoPayloadType,
			"signatures":  []any{},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	testkit.PushAnnotatedReferrer(t, img.Ref.String(), testkit.SigstoreBundleMediaType, testkit.SigstoreBundleMediaType, unsigned,
		map[string]string{testkit.BundlePredicateTypeAnnotation: SLSAProvenanceType})
	_, err = provenanceRule(t, config.CosignPolicy{Key: string(pub)}).Verify(t.Context(), img)
	refusedFor(t, err, "unsigned provenance")
}

func TestProvenanceReportsTheFirstReasonAndHowManyAttestationsFailed(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	img := pushed(t, reg, "apps/payments")
	key, pub := testkit.GenerateKey(t)
	other, _ := testkit.GenerateKey(t)
	testkit.AttestBundle(t, img.Ref, provenanceStatement(t, img.Ref.DigestStr(), ghBuilder, "git+https://github.com/evil/repo@refs/heads/main", ghBuild), key)
	testkit.AttestTag(t, img.Ref, provenanceStatement(t, img.Ref.DigestStr(), ghBuilder, mainSource, ghBuild), other)
	_, err := provenanceRule(t, config.CosignPolicy{Key: string(pub)}).Verify(t.Context(), img)
	refusedFor(t, err, "built from github.com/evil/repo, want github.com/example/payments (2 provenance attestations, none passes)")
}

func TestProvenanceKeylessPassesTheIdentityWantedAndRefusesAnother(t *testing.T) {
	for _, a := range attesters {
		t.Run(a.form, func(t *testing.T) {
			ss := testkit.NewSigstore(t)
			rule := provenanceRule(t, config.CosignPolicy{Keyless: &config.Keyless{
				TrustedRoot: ss.TrustedRootJSON(t), Issuer: issuer, Subject: alice}})

			reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
			img := pushed(t, reg, "apps/payments")
			a.attest(t, img.Ref, provenanceStatement(t, img.Ref.DigestStr(), ghBuilder, mainSource, ghBuild), ss.Identity(t, alice, issuer))
			got, err := rule.Verify(t.Context(), img)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			want := events.Verified{Policy: "built-by-ci", Kind: "provenance", Identity: alice, Issuer: issuer,
				Builder: ghBuilder, Source: "github.com/example/payments@refs/heads/main"}
			if got != want {
				t.Errorf("verified = %+v, want %+v", got, want)
			}

			mallory := pushed(t, reg, "apps/api")
			a.attest(t, mallory.Ref, provenanceStatement(t, mallory.Ref.DigestStr(), ghBuilder, mainSource, ghBuild),
				ss.Identity(t, "mallory@example.com", issuer))
			_, err = rule.Verify(t.Context(), mallory)
			refusedFor(t, err, "signed by certificate for mallory@example.com issued by "+issuer, "want subject "+alice)

			// A certificate from another Sigstore is vouched for by no
			// trusted root of the rule.
			elsewhere := pushed(t, reg, "apps/web")
			a.attest(t, elsewhere.Ref, provenanceStatement(t, elsewhere.Ref.DigestStr(), ghBuilder, mainSource, ghBuild),
				testkit.NewSigstore(t).Identity(t, alice, issuer))
			_, err = rule.Verify(t.Context(), elsewhere)
			refusedFor(t, err, "does not verify against the trusted root")
		})
	}
}
