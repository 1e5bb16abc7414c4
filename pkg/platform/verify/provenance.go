package verify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/slipway-cd/slipway/pkg/platform/config"
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
