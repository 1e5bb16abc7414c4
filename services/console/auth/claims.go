package auth

import (
	"fmt"
)

// defaultUserClaims are tried in order when console.auth.oidc.userClaim is
// not set: the first one the ID token has names the user.
var defaultUserClaims = []string{"email", "preferred_username", "sub"}

// userOf is the user's name from the ID token's claims: the configured
// claim, or the first of defaultUserClaims. An email the provider says is
// not verified does not name anyone (whoever typed it in could otherwise
// take a role granted to that address).
func userOf(claims map[string]any, claim string) (string, error) {
	if claim != "" {
		name, _ := claims[claim].(string)
		if name == "" {
			return "", fmt.Errorf("no %q claim (console.auth.oidc.userClaim)", claim)
		}
		if claim == "email" && unverifiedEmail(claims) {
			return "", fmt.Errorf("its email is not verified")
		}
		return name, nil
	}
	for _, c := range defaultUserClaims {
		if c == "email" && unverifiedEmail(claims) {
			continue
		}
		if name, _ := claims[c].(string); name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("none of the claims %v", defaultUserClaims)
}

// unverifiedEmail reports whether the token says its email is not verified
// (some providers send the flag as a string).
func unverifiedEmail(claims map[string]any) bool {
	switch v := claims["email_verified"].(type) {
	case bool:
		return !v
	case string:
		return v == "false"
	}
	return false
}

// groupsOf is the user's groups from the groups claim (default "groups"),
// a list of strings; anything else in it is left out, and said.
func (rp *relyingParty) groupsOf(claims map[string]any, user string) []string {
	claim := rp.cfg.GroupsClaim
	if claim == "" {
		claim = "groups"
	}
	var groups []string
	switch v := claims[claim].(type) {
	case nil:
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok && s != "" {
				groups = append(groups, s)
			}
		}
		if len(groups) < len(v) {
			rp.log.Warn("console: ID token's groups claim holds values that are not group names; they are left out", "claim", claim, "user", user)
		}
	default:
		rp.log.Warn("console: ID token's groups claim is not a list of strings; the user has no groups", "claim", claim, "user", user, "type", fmt.Sprintf("%T", v))
	}
	return groups
}
