package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Section is a part of the file that a service owns: the service checks its
// part (ingest, promotions, clusters, notify …) and applies its own defaults
// where it reads it, so that this package knows the file (loading, ${VAR},
// *File keys, the parts every service shares) and no service's rules.
// app.Service includes it; Load and Parse take the sections to check, so
// that `slipway config check` checks every service's part and `slipway run
// --only X` the parts of what runs.
//
// The part's types stay here as plain structs: the file is decoded in one
// strict pass (unknown keys, key paths, lines and *File keys over the whole
// file), which per-service raw sections would split into several.
type Section interface {
	// CheckConfig adds every problem of the section's part of c to p, each
	// under its key path. It must not change c: a Config built in Go
	// never passes through it, so the service defaults what it reads.
	CheckConfig(c *Config, p *Problems)
}

// SectionFunc is a function that is a Section.
type SectionFunc func(c *Config, p *Problems)

// CheckConfig calls f.
func (f SectionFunc) CheckConfig(c *Config, p *Problems) { f(c, p) }

// Add records a problem of the key at path ("ingest.sources[1].auth"); its
// line is found from the path when the file is checked.
func (ps *Problems) Add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// AddError records err, whose text starts with the key path it is about
// ("clusters[0].marathon: …"), as the problem of that key.
func (ps *Problems) AddError(err error) {
	path, msg, ok := strings.Cut(err.Error(), ": ")
	if !ok || !keyPathRE.MatchString(path) {
		path, msg = "", err.Error()
	}
	ps.Add(path, "%s", msg)
}

// Err is ps as an error: nil when there is no problem.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Check checks what every service shares (nats, environments, approvers,
// approvals, log) and the parts of sections, and returns every problem in
// one error, Problems (nil when there is none), without the file's secrets.
func (c *Config) Check(sections ...Section) error {
	var ps Problems
	c.checkCommon(&ps)
	for _, s := range sections {
		s.CheckConfig(c, &ps)
	}
	if len(ps) == 0 {
		return nil
	}
	r := c.Redactor()
	for i := range ps {
		ps[i].Message = r.String(ps[i].Message)
	}
	return ps
}

// Validate checks what every service shares; Check with the services'
// sections checks their parts too.
func (c *Config) Validate() error { return c.Check() }

// CheckEnvironment checks that name, at path, names an environment.
func (c *Config) CheckEnvironment(p *Problems, path, name string) {
	if name == "" {
		p.Add(path, "is required")
	} else if _, ok := c.Environment(name); !ok {
		p.Add(path, "unknown environment %q", name)
	}
}

// CheckHTTPURL checks that raw is an absolute http or https URL. A problem
// shows it as show (RedactURL, or RedactSecretURL for a URL that is a
// secret as a whole): URLs carry credentials, and an error ends up on a
// terminal.
func CheckHTTPURL(p *Problems, path, raw string, show func(string) string) {
	checkURL(p, path, raw, true, show)
}

// checkURL is CheckHTTPURL, for any scheme unless httpOnly.
func checkURL(p *Problems, path, raw string, httpOnly bool, show func(string) string) {
	if raw == "" {
		p.Add(path, "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		p.Add(path, "%q is not an absolute URL", show(raw))
		return
	}
	if httpOnly && u.Scheme != "http" && u.Scheme != "https" {
		p.Add(path, "%q must be http or https", show(raw))
	}
}

// CheckBasicAuth checks HTTP Basic credentials at path: both parts set, and
// a user name HTTP Basic authentication can carry. It joins user and
// password with ":" (RFC 7617), so the receiving side would split such a
// name, and every request would be refused.
func CheckBasicAuth(p *Problems, path string, b *BasicAuth) {
	if b.Username == "" || b.Password == "" {
		p.Add(path, "username and password are required")
	}
	checkBasicUser(p, path+".username", b.Username)
}

// checkBasicUser is the user name part of CheckBasicAuth.
func checkBasicUser(p *Problems, path, user string) {
	if strings.Contains(user, ":") {
		p.Add(path, "must not contain ':' (HTTP Basic authentication separates the user name from the password with it)")
	}
}

// CountSet is how many of bs are true: how many of a set of alternatives
// ("set one of none, basic, dcos, token") are set.
func CountSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// ValidName reports whether s is a name that may be a URL path segment and
// a consumer name: lowercase letters, digits, '-' or '_'.
func ValidName(s string) bool { return nameRE.MatchString(s) }
