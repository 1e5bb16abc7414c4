package actions_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

func targetConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
environments:
  - { name: dev, registry: { host: "registry.dev.example:5000", aliases: ["dev-registry.local"] } }
  - { name: tst, registry: { host: "registry.tst.example" } }
  - { name: prd, registry: { host: "registry.prd.example" } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }
  - { name: hotfix, from: dev, to: prd, repositories: ["apps/web"], tags: { regex: 'hotfix-.*' } }
  - { name: tst-to-prd, from: tst, to: prd, tags: { semver: ">=1.0.0" } }
clusters:
  - { name: prd-a, environment: prd, marathon: { url: "http://marathon.prd.example:8080" } }
  - { name: prd-b, environment: prd, type: swarm, docker: { host: "tcp://swarm.prd.example:2376" } }
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPromoteTargetFindsTheRule: without a rule named, the one rule that
// promotes the image from its registry's environment (found by host or
// alias) is taken; its to is the target's environment.
func TestPromoteTargetFindsTheRule(t *testing.T) {
	cfg := targetConfig(t)
	for _, tc := range []struct{ image, rule, wantRule, wantEnv string }{
		{"registry.dev.example:5000/apps/api:1.2.3", "", "dev-to-tst", "tst"},
		{"dev-registry.local/apps/api:1.2.3", "", "dev-to-tst", "tst"},
		{"registry.tst.example/payments/api:2.0.0@sha256:" + strings.Repeat("a", 64), "", "tst-to-prd", "prd"},
		{"registry.dev.example:5000/apps/web:hotfix-7", "hotfix", "hotfix", "prd"},
	} {
		got, err := actions.PromoteTarget(cfg, tc.image, tc.rule)
		if err != nil {
			t.Errorf("%s: %v", tc.image, err)
			continue
		}
		if got.Promotion != tc.wantRule || got.Environment != tc.wantEnv || got.Image != tc.image {
			t.Errorf("%s: %+v, want rule %s into %s", tc.image, got, tc.wantRule, tc.wantEnv)
		}
	}
}

// TestPromoteTargetRefusesWhatNoRuleDoes: each refusal says what is wrong
// and what would do.
func TestPromoteTargetRefusesWhatNoRuleDoes(t *testing.T) {
	cfg := targetConfig(t)
	for _, tc := range []struct{ image, rule, want string }{
		{"registry.dev.example:5000/apps/web:hotfix-7", "", "several rules promote apps/web:hotfix-7: dev-to-tst, hotfix; choose one with --rule"},
		{"registry.dev.example:5000/apps/web:1.0", "nope", `no promotion rule "nope" (configured: dev-to-tst, hotfix, tst-to-prd)`},
		{"registry.dev.example:5000/apps/web:1.0", "tst-to-prd", "rule tst-to-prd promotes from tst, but registry.dev.example:5000 is in dev"},
		{"registry.dev.example:5000/apps/web:1.0", "hotfix", "rule hotfix does not promote apps/web:1.0"},
		{"registry.dev.example:5000/lib/base:1.0", "", "no promotion rule promotes lib/base:1.0 from dev (rules from there: dev-to-tst, hotfix)"},
		{"registry.prd.example/apps/web:1.0.0", "", "no promotion rule promotes apps/web:1.0.0 from prd (rules from there: none)"},
		{"quay.io/apps/web:1.0", "", "registry quay.io is no environment's registry"},
		{"apps/web:1.0", "", "name the registry"},
		{"registry.dev.example:5000/apps/web", "", "name the tag"},
		{"registry.dev.example:5000/apps/web:1.0@sha256:abc", "", "the digest must be sha256:<64 hex digits>"},
		{"registry.dev.example:5000/Apps/web:1.0", "", `"Apps/web" is not a valid repository`},
	} {
		_, err := actions.PromoteTarget(cfg, tc.image, tc.rule)
		if !errors.Is(err, actions.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s --rule %q: %v; want ErrInvalid saying %q", tc.image, tc.rule, err, tc.want)
		}
	}
}

// TestWorkloadTargetChecksTheCluster: the cluster names the environment; a
// Marathon app id is made absolute, another platform's name is left alone.
func TestWorkloadTargetChecksTheCluster(t *testing.T) {
	cfg := targetConfig(t)
	got, err := actions.WorkloadTarget(cfg, "prd-a", "payments/api")
	if want := (events.ActionTarget{Environment: "prd", Cluster: "prd-a", AppID: "/payments/api"}); err != nil || got != want {
		t.Errorf("prd-a payments/api: %+v %v, want %+v", got, err, want)
	}
	got, err = actions.WorkloadTarget(cfg, "prd-b", "payments_api")
	if want := (events.ActionTarget{Environment: "prd", Cluster: "prd-b", AppID: "payments_api"}); err != nil || got != want {
		t.Errorf("prd-b payments_api: %+v %v, want %+v", got, err, want)
	}
	_, err = actions.WorkloadTarget(cfg, "prd-c", "/payments/api")
	if !errors.Is(err, actions.ErrInvalid) || !strings.Contains(err.Error(), `no cluster "prd-c" (configured: prd-a, prd-b)`) {
		t.Errorf("unknown cluster: %v", err)
	}
	if _, err = actions.WorkloadTarget(cfg, "prd-a", " "); !errors.Is(err, actions.ErrInvalid) {
		t.Errorf("no workload: %v", err)
	}
}
