package ingest

import (
	"crypto/tls"
	"fmt"
	"os"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
)

// CheckConfig checks the ingest part of c (the listener, its TLS, every
// webhook source) and the approvers' tokens ingest authenticates: a
// config.Section, run by `slipway config check` and at the start of a
// process that runs ingest. Ingest defaults what it reads where it reads
// it (DefaultListen, DefaultMaxBodyBytes, TLS 1.2).
func (*Service) CheckConfig(c *config.Config, p *config.Problems) {
	in := c.Ingest
	if in.MaxBodyBytes < 0 {
		p.Add("ingest.maxBodyBytes", "must be positive")
	}
	checkTLS(p, in.TLS)
	before := len(*p)
	seen := map[string]bool{}
	for i, s := range in.Sources {
		path := fmt.Sprintf("ingest.sources[%d]", i)
		switch {
		case !config.ValidName(s.Name):
			p.Add(path+".name", "%q must be lowercase letters, digits, '-' or '_' (it is a URL path segment)", s.Name)
		case seen[s.Name]:
			p.Add(path+".name", "%q is defined twice", s.Name)
		}
		seen[s.Name] = true
		if s.Format == "" {
			p.Add(path+".format", "is required")
		}
		switch {
		case s.Environment != "" && len(s.Routes) > 0:
			p.Add(path, "set environment or routes, not both")
		case len(s.Routes) == 0:
			c.CheckEnvironment(p, path+".environment", s.Environment)
		}
		checkRoutes(c, p, path+".routes", s.Routes)
		checkSourceRegistry(c, p, path+".registry", s)
		if s.RepositoryPath && s.Format != "artifactory" {
			p.Add(path+".repositoryPath", "applies to the artifactory format only (its payload carries the repository key)")
		}
		checkWebhookAuth(p, path+".auth", s.Auth)
		if s.RateLimit < 0 || s.Burst < 0 {
			p.Add(path+".rateLimit", "must not be negative")
		}
	}
	// Compiling the sources finds what only their formats and
	// authenticators know; with a key already wrong it would say the same
	// again.
	if len(*p) == before {
		if _, err := compileSources(c); err != nil {
			p.AddError(err)
		}
	}
	if err := checkApprovers(c); err != nil {
		p.AddError(err)
	}
}

func checkWebhookAuth(p *config.Problems, path string, a *config.Auth) {
	if a == nil {
		p.Add(path, "is required; use {none: true} to accept unauthenticated webhooks")
		return
	}
	if config.CountSet(a.None, a.Header != nil, a.HMAC != nil, a.Basic != nil, a.URLToken != "") != 1 {
		p.Add(path, "set exactly one of none, header, hmac, basic, urlToken")
		return
	}
	switch {
	case a.Header != nil:
		if a.Header.Name == "" {
			p.Add(path+".header.name", "is required")
		}
		if a.Header.Value == "" {
			p.Add(path+".header.value", "is required (or valueFile)")
		}
	case a.HMAC != nil:
		if a.HMAC.Header == "" {
			p.Add(path+".hmac.header", "is required")
		}
		if a.HMAC.Secret == "" {
			p.Add(path+".hmac.secret", "is required (or secretFile)")
		}
		switch a.HMAC.Algorithm {
		case "", "sha1", "sha256", "sha512":
		default:
			p.Add(path+".hmac.algorithm", "%q must be sha1, sha256 or sha512", a.HMAC.Algorithm)
		}
	case a.Basic != nil:
		config.CheckBasicAuth(p, path+".basic", a.Basic)
	}
}

// checkRoutes checks a source's routes: each selects images by at least one
// repository glob and at most one tag filter, for an environment that
// exists.
func checkRoutes(c *config.Config, p *config.Problems, path string, routes []config.SourceRoute) {
	for i, r := range routes {
		rpath := fmt.Sprintf("%s[%d]", path, i)
		if len(r.Repositories) == 0 {
			p.Add(rpath+".repositories", "name at least one repository glob (\"**\" for every repository)")
		}
		_, probs := match.Compile(r.Repositories, r.Tags)
		for _, mp := range probs {
			p.Add(rpath+"."+mp.Field, "%v", mp.Err)
		}
		c.CheckEnvironment(p, rpath+".environment", r.Environment)
	}
}

// checkSourceRegistry checks a source's registry: once the host used when
// a payload had none or to override it, it may now only name the registry
// of the source's environment, or of every environment its routes name (an
// event's registry is always the environment's; other names of it are
// aliases).
func checkSourceRegistry(c *config.Config, p *config.Problems, path string, s config.Source) {
	if s.Registry == "" {
		return
	}
	if !config.ValidHost(s.Registry) {
		p.Add(path, "%q must be a host[:port], without scheme or path", config.RedactURL(s.Registry))
		return
	}
	named := map[string]bool{s.Environment: true}
	for _, r := range s.Routes {
		named[r.Environment] = true
	}
	for i, e := range c.Environments {
		if named[e.Name] && !e.Registry.Names(s.Registry) {
			p.Add(path, "%q is not a name of environment %q's registry %q: declare it in environments[%d].registry.aliases (and drop it here)",
				s.Registry, e.Name, e.Registry.Host, i)
		}
	}
}

// checkTLS loads what the listener will load, so that a wrong path or a
// certificate that does not match its key fails `slipway config check` and
// the start, not the first registry's handshake.
func checkTLS(p *config.Problems, t *config.IngestTLS) {
	if t == nil {
		return
	}
	const path = "ingest.tls"
	files := true
	for _, f := range []struct{ key, file string }{{"certFile", t.CertFile}, {"keyFile", t.KeyFile}} {
		if f.file == "" {
			p.Add(path+"."+f.key, "is required")
			files = false
		} else if _, err := os.Stat(f.file); err != nil {
			p.Add(path+"."+f.key, "%v", err)
			files = false
		}
	}
	if files {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			p.Add(path, "certFile and keyFile do not load as a pair: %v", err)
		}
	}
	if _, err := t.ClientCAs(); err != nil {
		p.Add(path+".clientCAFile", "%v", err)
	}
	if _, err := t.Version(); err != nil {
		p.Add(path+".minVersion", "%v", err)
	}
}
