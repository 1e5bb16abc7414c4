package console

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// checkConfig checks console: the console must know how its users log in.
// The OIDC settings and the roles are checked with the rest of the file.
func checkConfig(cfg *config.Config, p *config.Problems) {
	a := cfg.Console.Auth
	switch {
	case a.OIDC == nil && !a.None:
		p.Add("console.auth", "the console needs a login: set console.auth.oidc (issuer, clientId, clientSecret, redirectUrl), or console.auth.none: true to let anyone in with every permission (only for a demo or a trusted network)")
	case a.OIDC != nil && a.None:
		p.Add("console.auth", "set either oidc or none, not both")
	}
}
