package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envBase has the environments the access examples refer to, accessBase
// an approver and a promotion with groups too.
const envBase = `
environments:
  - { name: dev, registry: { host: registry.dev.example } }
  - { name: prd, registry: { host: registry.prd.example } }
`

const accessBase = envBase + `approvers:
  - { name: rm, token: rm-token-0123, groups: [release-managers] }
promotions:
  - { name: dev-to-prd, from: dev, to: prd, approval: { required: true, groups: [release-managers] } }
`

const oidcSecret = "s3cret-oidc-client"

// withOIDC is accessBase with one role and a console logging in with the
// provider settings fields.
func withOIDC(fields string) string {
	return accessBase + "\nroles: [{ group: g, environments: [dev], can: [view] }]\nconsole:\n  auth:\n    oidc: { " + fields + " }\n"
}

func TestRolesAndOIDCThatPassTheCheck(t *testing.T) {
	doc := accessBase + `
roles:
  - { user: rm, environments: ["*"], can: [view, approve, operate] }
console:
  auth:
    oidc: { issuer: "https://sso.example/realms/slipway", clientId: slipway, clientSecret: "` + oidcSecret + `", redirectUrl: "https://slipway.example/auth/callback" }
  roles:
    - { group: developers, environments: [dev], can: [view] }
    - { group: prod-release, environments: [dev, prd], can: [view, approve, operate] }
`
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatalf("valid roles and OIDC refused: %v", err)
	}
	if got := cfg.Console.Auth.OIDC.GroupsClaim; got != "groups" {
		t.Errorf("groupsClaim defaults to %q, want groups", got)
	}
	// A provider on this machine may be reached over plain HTTP (tests,
	// development).
	for _, issuer := range []string{"http://127.0.0.1:5556/dex", "http://localhost:8080", "http://[::1]:9000"} {
		loop := strings.Replace(doc, "https://sso.example/realms/slipway", issuer, 1)
		if _, err := Parse([]byte(loop), env(nil)); err != nil {
			t.Errorf("loopback issuer %s refused: %v", issuer, err)
		}
	}
}

func TestClientSecretFromAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(file, []byte(oidcSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := withOIDC(`issuer: "https://sso.example", clientId: slipway, clientSecretFile: "` + file + `", redirectUrl: "https://slipway.example/auth/callback"`)
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Console.Auth.OIDC.ClientSecret; got != oidcSecret {
		t.Errorf("clientSecret from the file = %q", got)
	}
	both := strings.Replace(doc, `clientSecretFile:`, `clientSecret: "`+oidcSecret+`", clientSecretFile:`, 1)
	_, err = Parse([]byte(both), env(nil))
	if err == nil || !strings.Contains(err.Error(), "set either clientSecret or clientSecretFile, not both") {
		t.Errorf("both set: %v", err)
	}
}

func TestAccessProblemsNameTheirKeys(t *testing.T) {
	oidc := func(fields string) string { return strings.TrimPrefix(withOIDC(fields), accessBase) }
	const good = `issuer: "https://sso.example", clientId: slipway, clientSecret: "` + oidcSecret + `", redirectUrl: "https://slipway.example/auth/callback"`
	for _, tc := range []struct{ name, doc, want string }{
		{"role without group or user", "roles: [{ environments: [dev], can: [view] }]", "roles[0]: set group"},
		{"role with group and user", "roles: [{ group: g, user: u, environments: [dev], can: [view] }]", "roles[0]: set group or user, not both"},
		{"role without environments", "roles: [{ group: g, can: [view] }]", "roles[0].environments: name at least one environment"},
		{"role in an unknown environment", "roles: [{ group: g, environments: [dev, tst], can: [view] }]", `roles[0].environments[1]: unknown environment "tst"`},
		{"role without permissions", "roles: [{ group: g, environments: [dev] }]", "roles[0].can: name at least one of view, approve, operate"},
		{"role with an unknown permission", "roles: [{ group: g, environments: [dev], can: [view, deploy] }]", `roles[0].can[1]: "deploy" must be one of view, approve, operate`},
		{"console role", "console: { auth: { none: true }, roles: [{ user: u, environments: [qa], can: [view] }] }", `console.roles[0].environments[0]: unknown environment "qa"`},
		{"empty approver group", `approvers: [{ name: rm, token: rm-token-0123, groups: [""] }]`, "approvers[0].groups[0]: is empty"},
		{"approval groups without approval", "promotions: [{ name: p, from: dev, to: prd, approval: { groups: [release-managers] } }]", "promotions[0].approval.groups: applies only with approval.required: true"},
		{"empty approval group", `promotions: [{ name: p, from: dev, to: prd, approval: { required: true, groups: [" "] } }]`, "promotions[0].approval.groups[0]: is empty"},
		{"oidc without roles", "console:\n  auth:\n    oidc: { " + good + " }\n", "roles: at least one role is required with console.auth.oidc"},
		{"issuer missing", oidc(`clientId: slipway, clientSecret: "` + oidcSecret + `", redirectUrl: "https://slipway.example/auth/callback"`), "console.auth.oidc.issuer: is required"},
		{"issuer over http", oidc(strings.Replace(good, "https://sso.example", "http://sso.example", 1)), `console.auth.oidc.issuer: "http://sso.example" must be https (http only for a provider on this machine`},
		{"issuer not a URL", oidc(strings.Replace(good, "https://sso.example", "sso.example", 1)), `console.auth.oidc.issuer: "sso.example" must be an absolute https URL`},
		{"client id missing", oidc(strings.Replace(good, "clientId: slipway, ", "", 1)), "console.auth.oidc.clientId: is required"},
		{"client secret missing", oidc(strings.Replace(good, `clientSecret: "`+oidcSecret+`", `, "", 1)), "console.auth.oidc.clientSecret: is required (or clientSecretFile)"},
		{"redirect missing", oidc(strings.Replace(good, `, redirectUrl: "https://slipway.example/auth/callback"`, "", 1)), "console.auth.oidc.redirectUrl: is required"},
		{"redirect elsewhere", oidc(strings.Replace(good, "/auth/callback", "/callback", 1)), `console.auth.oidc.redirectUrl: "https://slipway.example/callback" must end in /auth/callback`},
		{"redirect relative", oidc(strings.Replace(good, "https://slipway.example/auth/callback", "/auth/callback", 1)), "console.auth.oidc.redirectUrl: \"/auth/callback\" must be an absolute http or https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := accessBase
			if strings.HasPrefix(tc.doc, "approvers:") || strings.HasPrefix(tc.doc, "promotions:") {
				base = envBase
			}
			_, err := Parse([]byte(base+tc.doc), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), oidcSecret) {
				t.Errorf("the problems show the client secret:\n%v", err)
			}
		})
	}
}

// The client secret is a secret: a problem that would quote it (here the
// secret typed where the issuer belongs) shows xxxxx instead.
func TestOIDCProblemsNeverShowTheClientSecret(t *testing.T) {
	doc := withOIDC(`issuer: "` + oidcSecret + `", clientId: slipway, clientSecret: "` + oidcSecret + `", redirectUrl: "` + oidcSecret + `"`)
	_, err := Parse([]byte(doc), env(nil))
	if err == nil {
		t.Fatal("a secret as issuer and redirectUrl passed")
	}
	if !strings.Contains(err.Error(), "console.auth.oidc.issuer") || !strings.Contains(err.Error(), "console.auth.oidc.redirectUrl") {
		t.Errorf("the problems do not name the keys:\n%v", err)
	}
	if strings.Contains(err.Error(), oidcSecret) {
		t.Errorf("the problems show the client secret:\n%v", err)
	}
}
