package console

import (
	"net/url"
	"strings"

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
	// The console serves its pages, cookies and callback from the root of
	// its host: a redirectUrl under a prefix (the file's own check wants it
	// to end in /auth/callback) would bring logins back to a path the
	// console does not serve.
	if a.OIDC != nil {
		u, err := url.Parse(a.OIDC.RedirectURL)
		if err == nil && u.Path != config.CallbackPath && strings.HasSuffix(u.Path, config.CallbackPath) {
			p.Add("console.auth.oidc.redirectUrl", "%q: the console is served at the root of its host, so its callback is exactly %s (https://console.example%s); serve it on a host of its own rather than under a path prefix", config.RedactURL(a.OIDC.RedirectURL), config.CallbackPath, config.CallbackPath)
		}
	}
}
