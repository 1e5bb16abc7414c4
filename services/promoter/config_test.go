package promoter_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// The promoter checks its promotions, each problem under its key path, and
// all of them in one run.
func TestConfigProblemsNameTheKeyPath(t *testing.T) {
	doc := `
environments: [{name: a, registry: {host: r}}, {name: b, registry: {host: r}}]
promotions:
  - {name: p, from: a, to: b, approval: {required: true, approvers: [bob]}}
  - {name: q, from: a, to: c, tags: {regex: "("}}
  - {name: p, from: a, to: a}
`
	_, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false }, promoter.New())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`promotions[0].approval.approvers[0]: unknown approver "bob"`,
		`promotions[1].to: unknown environment "c"`,
		`promotions[1].tags.regex: error parsing regexp`,
		`promotions[2].to: must differ from from`,
		`promotions[2].name: "p" is already used by promotions[0]`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the problems lack %q:\n%v", want, err)
		}
	}
}

// Verification policies are built at config check as at start: each
// broken entry is reported under its key path, with the file it names,
// and key material is never repeated.
func TestConfigCheckBuildsVerificationPolicies(t *testing.T) {
	dir := t.TempDir()
	notKey := filepath.Join(dir, "not-a.key")
	if err := os.WriteFile(notKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := testkit.NewSigstore(t).TrustedRootJSON(t)
	doc := fmt.Sprintf(`
environments: [{name: a, registry: {host: r}}, {name: b, registry: {host: r}}]
verification: { summary: { keyFile: %[1]q } }
promotions:
  - name: p
    from: a
    to: b
    verify:
      - { cosign: { key: "-----BEGIN PUBLIC KEY-----\nTOPSECRETBYTES\n-----END PUBLIC KEY-----\n" } }
      - { cosign: { key: k }, notation: { trustStore: /x, trustPolicy: /y } }
      - { cosign: { keyless: { trustedRoot: %[1]q, issuer: https://i, subject: a } } }
      - { cosign: { keyless: { trustedRoot: %[2]q, issuer: https://i, subject: a, subjectRegex: b } } }
      - { cosign: { keyless: { trustedRoot: %[2]q, subjectRegex: "^a" } } }
      - { cosign: { keyless: { trustedRoot: %[2]q, issuer: https://i, subjectRegex: "(" } } }
      - { notation: { trustStore: %[3]q, trustPolicy: %[1]q } }
      - { provenance: { keyless: { trustedRoot: %[2]q, issuer: https://i, subject: a } } }
`, notKey, root, filepath.Join(dir, "no-store"))
	_, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false }, promoter.New())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`promotions[0].verify[0].cosign: key`,
		`promotions[0].verify[1]: set exactly one of cosign, notation, provenance`,
		`promotions[0].verify[2].cosign: keyless.trustedRoot ` + notKey,
		`promotions[0].verify[3].cosign: keyless: set exactly one of subject and subjectRegex`,
		`promotions[0].verify[4].cosign: keyless: issuer is required`,
		`promotions[0].verify[5].cosign: keyless.subjectRegex: error parsing regexp`,
		`promotions[0].verify[6].notation: trustStore`,
		`promotions[0].verify[7].provenance: builderIds`,
		`verification.summary.keyFile ` + notKey,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the problems lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "TOPSECRETBYTES") {
		t.Errorf("the problems repeat key material:\n%v", err)
	}
}

// A rule that verifies needs Slipway's key to sign the summary; a file
// without one is refused at check, saying which key is missing.
func TestConfigCheckWantsTheSummaryKeyWhenARuleVerifies(t *testing.T) {
	key, _ := testkit.GenerateKey(t)
	_, pub := testkit.WriteKeyFiles(t, key)
	doc := fmt.Sprintf(`
environments: [{name: a, registry: {host: r}}, {name: b, registry: {host: r}}]
promotions:
  - { name: p, from: a, to: b, verify: [ { cosign: { keyFile: %q } } ] }
`, pub)
	_, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false }, promoter.New())
	if err == nil || !strings.Contains(err.Error(), "verification.summary.keyFile: is required when a promotion verifies images") {
		t.Fatalf("want verification.summary.keyFile required, got %v", err)
	}
	if strings.Count(err.Error(), "\n") > 0 {
		t.Errorf("a valid keyFile is reported too:\n%v", err)
	}
}
