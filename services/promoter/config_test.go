package promoter_test

import (
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
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
