package verify

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
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
