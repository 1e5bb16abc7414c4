package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// RoleCan is every permission a role's can list may name (the access
// package's permissions, in the order the docs give them).
var RoleCan = []string{"view", "approve", "operate"}

// AllEnvironments in a role's environments grants its permissions in every
// environment, those added later too.
const AllEnvironments = "*"

// DefaultGroupsClaim is the ID token claim read for a console user's
// groups when console.auth.oidc.groupsClaim is not set.
const DefaultGroupsClaim = "groups"

// CallbackPath is the console's OIDC callback route; redirectUrl must end
// with it, or the provider would send users back where no one listens.
const CallbackPath = "/auth/callback"

// checkAccess checks who may do what: roles (top-level and console.roles),
// the approvers' groups, the promotions' approval groups and the console's
// OpenID provider. They are shared: the console, ingest's approval and
// action API and its Slack buttons all decide with the same roles.
func (c *Config) checkAccess(p *Problems, envs map[string]bool) {
	for i, r := range c.Roles {
		checkRole(p, fmt.Sprintf("roles[%d]", i), r, envs)
	}
	for i, r := range c.Console.Roles {
		checkRole(p, fmt.Sprintf("console.roles[%d]", i), r, envs)
	}
	for i, a := range c.Approvers {
		for j, g := range a.Groups {
			if strings.TrimSpace(g) == "" {
				p.Add(fmt.Sprintf("approvers[%d].groups[%d]", i, j), "is empty")
			}
		}
	}
	for i, pr := range c.Promotions {
		path := fmt.Sprintf("promotions[%d].approval.groups", i)
		if len(pr.Approval.Groups) > 0 && !pr.Approval.Required {
			p.Add(path, "applies only with approval.required: true (without it nobody is asked)")
		}
		for j, g := range pr.Approval.Groups {
			if strings.TrimSpace(g) == "" {
				p.Add(fmt.Sprintf("%s[%d]", path, j), "is empty")
			}
		}
	}
	if o := c.Console.Auth.OIDC; o != nil {
		checkOIDC(p, "console.auth.oidc", o)
		if len(c.Roles) == 0 && len(c.Console.Roles) == 0 {
			p.Add("roles", "at least one role is required with console.auth.oidc: a user sees only the environments a role lets them view, so without roles nobody could see anything")
		}
	}
}

// checkRole checks one role at path: for a group or a user (one of them),
// in environments the file declares (or "*"), granting known permissions.
func checkRole(p *Problems, path string, r Role, envs map[string]bool) {
	switch {
	case r.Group == "" && r.User == "":
		p.Add(path, "set group (an OIDC group, or an approver's group) or user (a user name, or an approver's name)")
	case r.Group != "" && r.User != "":
		p.Add(path, "set group or user, not both: a role is for one of them")
	}
	if len(r.Environments) == 0 {
		p.Add(path+".environments", "name at least one environment (\"*\" for every environment)")
	}
	for j, e := range r.Environments {
		if e != AllEnvironments && !envs[e] {
			p.Add(fmt.Sprintf("%s.environments[%d]", path, j), "unknown environment %q", e)
		}
	}
	if len(r.Can) == 0 {
		p.Add(path+".can", "name at least one of %s", strings.Join(RoleCan, ", "))
	}
	for j, can := range r.Can {
		if !slices.Contains(RoleCan, can) {
			p.Add(fmt.Sprintf("%s.can[%d]", path, j), "%q must be one of %s", can, strings.Join(RoleCan, ", "))
		}
	}
}

// checkOIDC checks the console's OpenID provider settings at path. The
// client secret is never quoted: it is a secret (and the Redactor removes
// it from every problem as a last net).
func checkOIDC(p *Problems, path string, o *OIDC) {
	if o.Issuer == "" {
		p.Add(path+".issuer", "is required")
	} else if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		p.Add(path+".issuer", "%q must be an absolute https URL", RedactURL(o.Issuer))
	} else if u.Scheme == "http" && !loopback(u.Hostname()) {
		// The provider's discovery and token answers are what the console
		// trusts users by; over plain HTTP anyone on the way could forge
		// them. A provider on this machine (tests, development) is the one
		// exception.
		p.Add(path+".issuer", "%q must be https (http only for a provider on this machine: localhost or a loopback address)", RedactURL(o.Issuer))
	}
	if o.ClientID == "" {
		p.Add(path+".clientId", "is required")
	}
	// Setting both clientSecret and clientSecretFile is reported where the
	// file is read.
	if o.ClientSecret == "" && o.ClientSecretFile == "" {
		p.Add(path+".clientSecret", "is required (or clientSecretFile)")
	}
	if o.RedirectURL == "" {
		p.Add(path+".redirectUrl", "is required: the console's %s as the browser reaches it (https://console.example%s)", CallbackPath, CallbackPath)
	} else if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		p.Add(path+".redirectUrl", "%q must be an absolute http or https URL ending in %s", RedactURL(o.RedirectURL), CallbackPath)
	} else if !strings.HasSuffix(u.Path, CallbackPath) {
		p.Add(path+".redirectUrl", "%q must end in %s: the console receives the provider's answer there", RedactURL(o.RedirectURL), CallbackPath)
	}
	if strings.TrimSpace(o.GroupsClaim) == "" && o.GroupsClaim != "" {
		p.Add(path+".groupsClaim", "is blank")
	}
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
