package promoter

import (
	"errors"
	"fmt"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/promoter/rules"
)

// CheckConfig checks the promotions of c: each compiles (names, globs, tag
// filters, templates, …), names environments and approvers the file
// declares, and has verification policies whose keys, trusted roots and
// trust stores load (with Slipway's summary key when a rule verifies). It is a config.Section, run by `slipway config check` and at
// the start of a process that runs the promoter.
func (*Service) CheckConfig(c *config.Config, p *config.Problems) {
	for i, r := range c.Promotions {
		path := fmt.Sprintf("promotions[%d]", i)
		// An empty one is the rule's own problem ("is required").
		for _, f := range []struct{ key, env string }{{".from", r.From}, {".to", r.To}} {
			if f.env != "" {
				c.CheckEnvironment(p, path+f.key, f.env)
			}
		}
		for j, a := range r.Approval.Approvers {
			if _, ok := c.Approver(a); !ok && a != "" {
				p.Add(fmt.Sprintf("%s.approval.approvers[%d]", path, j), "unknown approver %q", a)
			}
		}
	}
	// Keys, trusted roots and trust stores are read as at start: the same
	// code, so what passes here starts.
	if _, err := buildVerification(c); err != nil {
		for _, e := range joined(err) {
			p.AddError(e)
		}
	}
	_, err := rules.CompileAll(c.Promotions)
	for _, e := range joined(err) {
		if fe, ok := errors.AsType[*rules.FieldError](e); ok {
			p.Add(fe.Field, "%v", fe.Err)
		} else {
			p.AddError(e)
		}
	}
}

// joined is the errors errors.Join joined in err, or err alone.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
