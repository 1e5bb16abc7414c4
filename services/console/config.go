package console

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// checkConfig checks console: the console must know how its users log in.
// The OIDC settings and the roles are checked with the rest of the file.
//
// A file without a console section passes: `slipway run` does not start the
// console then, and `--only console` fails at start with the same words.
func checkConfig(cfg *config.Config, p *config.Problems) {
	if !cfg.Console.Configured() {
		return
	}
	checkLogin(cfg, p)
}

// checkLogin checks that the console knows how its users log in.
func checkLogin(cfg *config.Config, p *config.Problems) {
	a := cfg.Console.Auth
	switch {
	case a.OIDC == nil && !a.None:
		p.Add("console.auth", "the console needs a login: set console.auth.oidc (issuer, clientId, clientSecret, redirectUrl), or console.auth.none: true to let anyone in with every permission (only for a demo or a trusted network)")
	case a.OIDC != nil && a.None:
		p.Add("console.auth", "set either oidc or none, not both")
	}
}
