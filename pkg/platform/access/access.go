// Package access decides who may do what in which environment, the same way
// for every interface a person acts through: the console (OIDC users), the
// approval and action API (approvers' tokens) and Slack (approvers' Slack
// ids). Roles come from the configuration (roles and console.roles): each
// grants view, approve or operate in a list of environments to an OIDC
// group, or to one user.
package access

import (
	"slices"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Permission is what a role lets a person do in an environment.
type Permission string

// The permissions. Approve and Operate include View: who may decide or act
// in an environment may see it.
const (
	// View: see the environment's workloads, images, approvals and events.
	View Permission = "view"
	// Approve: decide the approvals of promotions into the environment.
	Approve Permission = "approve"
	// Operate: manual actions on the environment's workloads (rollback,
	// redeploy), promote into it now, and redrive its dead letters.
	Operate Permission = "operate"
)

// Permissions lists every permission, in the order the docs give them.
var Permissions = []Permission{View, Approve, Operate}

// Identity is a person as an interface knows them.
type Identity struct {
	// Name identifies the person in roles, events and the audit: the OIDC
	// user claim, or the approver's name.
	Name string
	// Groups are the OIDC groups, or the approver's configured groups.
	Groups []string
	// Via is the interface (events.ViaConsole, ViaAPI, ViaSlack, ViaCLI).
	Via string
}

// Policy holds the roles of a configuration.
type Policy struct {
	roles []config.Role
	// open grants everything to everyone: console.auth.none, or no roles
	// at all where the interface predates them (see Open).
	open bool
}

// New builds the policy of cfg's roles (roles and console.roles).
func New(cfg *config.Config) *Policy {
	roles := append(slices.Clone(cfg.Roles), cfg.Console.Roles...)
	return &Policy{roles: roles}
}

// Everyone is the policy that allows every permission to anyone: the
// console with auth.none.
func Everyone() *Policy { return &Policy{open: true} }

// Configured reports whether any role is configured. The API and Slack
// check roles only then, so that a configuration from before roles keeps
// working as it did (the promotion's approvers decide).
func (p *Policy) Configured() bool { return p.open || len(p.roles) > 0 }

// Can reports whether id has perm in environment env.
func (p *Policy) Can(id Identity, perm Permission, env string) bool {
	if p.open {
		return true
	}
	for _, r := range p.roles {
		if !r.Matches(id.Name, id.Groups) {
			continue
		}
		if !slices.Contains(r.Environments, env) && !slices.Contains(r.Environments, "*") {
			continue
		}
		if grants(r.Can, perm) {
			return true
		}
	}
	return false
}

// grants reports whether a role's can list gives perm; approve and operate
// include view.
func grants(can []string, perm Permission) bool {
	for _, c := range can {
		if Permission(c) == perm || perm == View && (Permission(c) == Approve || Permission(c) == Operate) {
			return true
		}
	}
	return false
}

// Environments are the environments among envs in which id has perm, in
// envs' order.
func (p *Policy) Environments(id Identity, perm Permission, envs []string) []string {
	var out []string
	for _, e := range envs {
		if p.Can(id, perm, e) {
			out = append(out, e)
		}
	}
	return out
}

// Filter returns a function that reports whether id may view environment
// env: what every view, endpoint and stream of the console filters with.
func (p *Policy) Filter(id Identity) func(env string) bool {
	return func(env string) bool { return p.Can(id, View, env) }
}
