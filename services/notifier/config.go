package notifier

import (
	"fmt"
	"strings"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/render"
)

// CheckConfig checks the notify part of c: a config.Section, run by
// `slipway config check` and at the start of a process that runs the
// notifier. Each receiver sets exactly one kind, whose integration checks
// its block; templates compile; routes name receivers and event types that
// exist.
func (s *Service) CheckConfig(c *config.Config, p *config.Problems) {
	checkConfig(c, s.constructors(), p)
}

// constructors are the Integrations, or the ones a test gave.
func (s *Service) constructors() map[string]Constructor {
	if s.Integrations != nil {
		return s.Integrations
	}
	return DefaultIntegrations()
}

// checkConfig is CheckConfig with the constructors this build has.
func checkConfig(cfg *config.Config, constructors map[string]Constructor, p *config.Problems) {
	kinds := make([]string, len(Integrations))
	for i, in := range Integrations {
		kinds[i] = in.Kind
	}
	names := map[string]bool{}
	for i, r := range cfg.Notify.Receivers {
		path := fmt.Sprintf("notify.receivers[%d]", i)
		switch {
		case r.Name == "":
			p.Add(path+".name", "is required")
		case names[r.Name]:
			p.Add(path+".name", "%q is defined twice", r.Name)
		case !events.ValidToken(r.Name):
			p.Add(path+".name", "%q must be letters, digits, '-' or '_' (it names the receiver's consumer)", r.Name)
		}
		names[r.Name] = true
		set := 0
		for _, in := range Integrations {
			if in.Configured(r) {
				set++
			}
		}
		if in, ok := integrationOf(r); set == 1 && ok {
			if constructors[in.Kind] == nil {
				p.Add(path+"."+in.Kind, "this build has no %s integration", in.Kind)
			}
			in.CheckConfig(r, path+"."+in.Kind, p)
		} else {
			p.Add(path, "set exactly one receiver kind (%s)", strings.Join(kinds, ", "))
		}
		if r.RateLimit < 0 || r.Burst < 0 {
			p.Add(path+".rateLimit", "must not be negative")
		}
		if _, err := render.Compile(r.Templates); err != nil {
			p.Add(path, "%v", err)
		}
	}
	for i, r := range cfg.Notify.Routes {
		for j, name := range r.Receivers {
			if !names[name] {
				p.Add(fmt.Sprintf("notify.routes[%d].receivers[%d]", i, j), "unknown receiver %q", name)
			}
		}
	}
	validateRoutes(cfg.Notify.Routes, p)
}
