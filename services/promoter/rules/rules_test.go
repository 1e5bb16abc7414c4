package rules

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

func promotion(mod func(*config.Promotion)) config.Promotion {
	p := config.Promotion{Name: "dev-to-tst", From: "dev", To: "tst"}
	if mod != nil {
		mod(&p)
	}
	return p
}

func mustCompile(t *testing.T, p config.Promotion) *Rule {
	t.Helper()
	r, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

func TestRepositoryGlobs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		globs []string
		repo  string
		want  bool
	}{
		// empty list: every repository
		{nil, "web", true},
		{nil, "apps/team/web", true},
		{[]string{}, "apps/web", true},
		// exact
		{[]string{"apps/web"}, "apps/web", true},
		{[]string{"apps/web"}, "apps/web2", false},
		{[]string{"apps/web"}, "apps/team/web", false},
		{[]string{"apps/web"}, "Apps/web", false},
		// * within one segment
		{[]string{"apps/*"}, "apps/web", true},
		{[]string{"apps/*"}, "apps/team/web", false},
		{[]string{"apps/*"}, "apps", false},
		{[]string{"apps/*"}, "other/web", false},
		{[]string{"*"}, "web", true},
		{[]string{"*"}, "apps/web", false},
		{[]string{"apps/*-svc"}, "apps/pay-svc", true},
		{[]string{"apps/*-svc"}, "apps/pay-api", false},
		// ** across segments
		{[]string{"apps/**"}, "apps/web", true},
		{[]string{"apps/**"}, "apps/team/web", true},
		{[]string{"apps/**"}, "apps/a/b/c/d", true},
		{[]string{"apps/**"}, "other/web", false},
		{[]string{"apps/**"}, "apps", true}, // doublestar: /** also matches the directory itself
		{[]string{"apps/**"}, "appsx/web", false},
		{[]string{"**"}, "web", true},
		{[]string{"**"}, "apps/team/web", true},
		{[]string{"**/web"}, "web", true},
		{[]string{"**/web"}, "apps/team/web", true},
		{[]string{"**/web"}, "apps/team/api", false},
		{[]string{"apps/**/web"}, "apps/web", true},
		{[]string{"apps/**/web"}, "apps/x/y/web", true},
		// any of several
		{[]string{"libs/*", "apps/**"}, "apps/team/web", true},
		{[]string{"libs/*", "apps/**"}, "libs/base", true},
		{[]string{"libs/*", "apps/**"}, "tools/x", false},
		// alternatives and classes
		{[]string{"apps/{web,api}"}, "apps/api", true},
		{[]string{"apps/{web,api}"}, "apps/db", false},
	}
	for _, c := range cases {
		r := mustCompile(t, promotion(func(p *config.Promotion) { p.Repositories = c.globs }))
		got, reason := r.Matches(c.repo, "1.0.0")
		if got != c.want {
			t.Errorf("globs %q, repo %q: Matches = %v (%s), want %v", c.globs, c.repo, got, reason, c.want)
		}
		if !got && !strings.Contains(reason, c.repo) {
			t.Errorf("globs %q, repo %q: reason %q does not name the repository", c.globs, c.repo, reason)
		}
	}
}

func TestSemverTags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		constraint string
		tag        string
		want       bool
	}{
		// The contract's example: every version, pre-releases included.
		{">=0.0.0-0", "0.0.0", true},
		{">=0.0.0-0", "0.0.1-alpha", true},
		{">=0.0.0-0", "1.4.0-rc.2", true},
		{">=0.0.0-0", "v1.4.0-rc.2", true},
		{">=0.0.0-0", "2.0.0", true},
		{">=0.0.0-0", "v10.20.30", true},
		{">=0.0.0-0", "1.0.0-0", true},
		{">=0.0.0-0", "latest", false},
		{">=0.0.0-0", "sha-0a1b2c3", false},
		{">=0.0.0-0", "1.2", false},    // not a full version
		{">=0.0.0-0", "1", false},      // floating tag
		{">=0.0.0-0", "V1.2.3", false}, // only a lowercase v
		{">=0.0.0-0", "01.2.3", false}, // leading zero
		{">=0.0.0-0", "vv1.2.3", false},
		// releases only
		{">=1.0.0", "1.0.0", true},
		{">=1.0.0", "v1.2.3", true},
		{">=1.0.0", "0.9.9", false},
		{">=1.0.0", "1.1.0-rc.1", false}, // pre-release, constraint names none
		{">=1.0.0-0", "1.1.0-rc.1", true},
		// caret
		{"^1.2", "1.2.0", true},
		{"^1.2", "1.9.3", true},
		{"^1.2", "v1.2.7", true},
		{"^1.2", "1.1.9", false},
		{"^1.2", "2.0.0", false},
		{"^1.2", "1.3.0-rc.1", false},
		// tilde, ranges, or
		{"~1.2", "1.2.9", true},
		{"~1.2", "1.3.0", false},
		{">=1.0.0 <2.0.0", "1.5.0", true},
		{">=1.0.0, <2.0.0", "2.0.0", false},
		{"1.x || >=3.0.0", "1.7.0", true},
		{"1.x || >=3.0.0", "2.1.0", false},
		{"1.x || >=3.0.0", "3.0.1", true},
		{"=1.2.3", "v1.2.3", true},
	}
	for _, c := range cases {
		r := mustCompile(t, promotion(func(p *config.Promotion) { p.Tags.Semver = c.constraint }))
		got, reason := r.Matches("apps/web", c.tag)
		if got != c.want {
			t.Errorf("semver %q, tag %q: Matches = %v (%s), want %v", c.constraint, c.tag, got, reason, c.want)
		}
		if got && reason != "" {
			t.Errorf("semver %q, tag %q: reason %q on a match", c.constraint, c.tag, reason)
		}
		if !got && !strings.Contains(reason, c.tag) {
			t.Errorf("semver %q, tag %q: reason %q does not name the tag", c.constraint, c.tag, reason)
		}
	}
}

func TestSemverReasons(t *testing.T) {
	t.Parallel()
	r := mustCompile(t, promotion(func(p *config.Promotion) { p.Tags.Semver = ">=1.0.0" }))
	_, reason := r.Matches("apps/web", "latest")
	if !strings.Contains(reason, "not a semantic version") {
		t.Errorf("reason for latest = %q", reason)
	}
	_, reason = r.Matches("apps/web", "1.1.0-rc.1")
	if !strings.Contains(reason, "prerelease") {
		t.Errorf("reason for a pre-release = %q", reason)
	}
	_, reason = r.Matches("apps/web", "0.5.0")
	if !strings.Contains(reason, `does not satisfy tags.semver ">=1.0.0"`) {
		t.Errorf("reason for 0.5.0 = %q", reason)
	}
}

func TestRegexTags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		regex string
		tag   string
		want  bool
	}{
		{"rc", "rc", true},
		{"rc", "1.0.0-rc", false}, // anchored: no substring match
		{"rc", "rc1", false},
		{`.*-rc\.[0-9]+`, "1.4.0-rc.2", true},
		{`.*-rc\.[0-9]+`, "1.4.0-rc.2-debug", false},
		{`.*-rc\.[0-9]+`, "1.4.0", false},
		{"release-.*", "release-2024.01", true},
		{"release-.*", "pre-release-1", false},
		{"a|b", "a", true},   // alternation is grouped before anchoring
		{"a|b", "ab", false}, // not ^a|b$
		{"a|b", "xb", false},
		{"^main-[0-9a-f]{7}$", "main-0a1b2c3", true}, // explicit anchors are harmless
		{"main-[0-9a-f]{7}", "main-0a1b2c3d", false},
	}
	for _, c := range cases {
		r := mustCompile(t, promotion(func(p *config.Promotion) { p.Tags.Regex = c.regex }))
		got, reason := r.Matches("apps/web", c.tag)
		if got != c.want {
			t.Errorf("regex %q, tag %q: Matches = %v (%s), want %v", c.regex, c.tag, got, reason, c.want)
		}
		if !got && !strings.Contains(reason, "tags.regex") {
			t.Errorf("regex %q, tag %q: reason %q", c.regex, c.tag, reason)
		}
	}
}

func TestNoTagFilterMatchesEveryTag(t *testing.T) {
	t.Parallel()
	r := mustCompile(t, promotion(nil))
	for _, tag := range []string{"latest", "1.0.0", "1.0.0-rc.1", "sha-abc", "_x"} {
		if ok, reason := r.Matches("apps/web", tag); !ok {
			t.Errorf("Matches(%q) = false (%s)", tag, reason)
		}
	}
}

func TestRepositoryCheckedBeforeTag(t *testing.T) {
	t.Parallel()
	r := mustCompile(t, promotion(func(p *config.Promotion) {
		p.Repositories = []string{"apps/**"}
		p.Tags.Semver = ">=1.0.0"
	}))
	ok, reason := r.Matches("libs/base", "1.0.0")
	if ok || !strings.Contains(reason, `repository "libs/base" matches none of ["apps/**"]`) {
		t.Errorf("Matches = %v, %q", ok, reason)
	}
}

func TestTarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name              string
		targetRepo, tmpl  string
		repo, tag         string
		wantRepo, wantTag string
	}{
		{"defaults", "", "", "apps/web", "1.4.0-rc.2", "apps/web", "1.4.0-rc.2"},
		{"explicit defaults", "{{ .Repository }}", "{{ .Tag }}", "apps/web", "v2.0.0", "apps/web", "v2.0.0"},
		{"stripPrerelease", "", "{{ .Tag | stripPrerelease }}", "apps/web", "1.4.0-rc.2", "apps/web", "1.4.0"},
		{"stripPrerelease keeps v", "", "{{ .Tag | stripPrerelease }}", "apps/web", "v1.4.0-rc.2", "apps/web", "v1.4.0"},
		{"stripPrerelease release", "", "{{ stripPrerelease .Tag }}", "apps/web", "1.4.0", "apps/web", "1.4.0"},
		{"regexReplace rc", "", `{{ regexReplace "-rc\\.[0-9]+$" "" .Tag }}`, "apps/web", "1.4.0-rc.12", "apps/web", "1.4.0"},
		{"regexReplace raw string", "", "{{ regexReplace `-rc\\.[0-9]+$` `` .Tag }}", "apps/web", "1.4.0-rc.3", "apps/web", "1.4.0"},
		{"regexReplace no rc", "", `{{ regexReplace "-rc\\.[0-9]+$" "" .Tag }}`, "apps/web", "1.4.0", "apps/web", "1.4.0"},
		{"regexReplace groups", "", `{{ .Tag | regexReplace "^release-(.*)$" "r$1" }}`, "apps/web", "release-7", "apps/web", "r7"},
		{"trimPrefix repo", `prod/{{ .Repository | trimPrefix "apps/" }}`, "", "apps/web", "1.0.0", "prod/web", "1.0.0"},
		{"trimPrefix tag", "", `{{ trimPrefix "v" .Tag }}`, "apps/web", "v1.0.0", "apps/web", "1.0.0"},
		{"trimSuffix", "", `{{ .Tag | trimSuffix "-debug" }}`, "apps/web", "1.0.0-debug", "apps/web", "1.0.0"},
		{"replace", `{{ replace "/" "-" .Repository }}`, "", "apps/team/web", "1.0.0", "apps-team-web", "1.0.0"},
		{"lower", `{{ .Repository | lower }}`, "", "Apps/Web", "1.0.0", "apps/web", "1.0.0"},
		{"upper", "", `{{ .Tag | upper }}`, "apps/web", "rc1", "apps/web", "RC1"},
		{"version fields", "", "{{ .Version.Major }}.{{ .Version.Minor }}", "apps/web", "v1.4.2", "apps/web", "1.4"},
		{"version prerelease", "", "{{ .Version.Patch }}-{{ .Version.Prerelease }}", "apps/web", "1.4.2-rc.1", "apps/web", "2-rc.1"},
		{"version string", "", "{{ .Version }}", "apps/web", "v1.4.2-rc.1", "apps/web", "1.4.2-rc.1"},
		{"conditional on version", "", "{{ if .Version }}{{ .Version.Major }}{{ else }}{{ .Tag }}{{ end }}", "apps/web", "latest", "apps/web", "latest"},
		{"white space trimmed", "", "  {{ .Tag }}\n", "apps/web", "1.0.0", "apps/web", "1.0.0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := mustCompile(t, promotion(func(p *config.Promotion) {
				p.TargetRepository, p.TargetTag = c.targetRepo, c.tmpl
			}))
			repo, tag, err := r.Target(c.repo, c.tag)
			if err != nil {
				t.Fatalf("Target(%q, %q): %v", c.repo, c.tag, err)
			}
			if repo != c.wantRepo || tag != c.wantTag {
				t.Errorf("Target(%q, %q) = %q, %q; want %q, %q", c.repo, c.tag, repo, tag, c.wantRepo, c.wantTag)
			}
		})
	}
}

func TestTargetErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name             string
		targetRepo, tmpl string
		repo, tag        string
		want             []string // substrings of the error
	}{
		{"invalid tag result", "", "{{ .Tag }}:x", "apps/web", "1.0.0",
			[]string{"targetTag:", `"{{ .Tag }}:x"`, `"1.0.0:x"`, "not a valid tag"}},
		{"empty tag result", "", `{{ trimPrefix "latest" .Tag }}`, "apps/web", "latest",
			[]string{"targetTag:", `produced ""`}},
		{"tag too long", "", "{{ .Tag }}" + strings.Repeat("x", 128), "apps/web", "1",
			[]string{"targetTag:", "not a valid tag"}},
		{"tag starting with dot", "", ".{{ .Tag }}", "apps/web", "1.0.0",
			[]string{"targetTag:", `".1.0.0"`}},
		{"uppercase repository", "{{ .Repository | upper }}", "", "apps/web", "1.0.0",
			[]string{"targetRepository:", `"{{ .Repository | upper }}"`, `"APPS/WEB"`, "not a valid repository"}},
		{"repository with empty segment", "prod//{{ .Repository }}", "", "apps/web", "1.0.0",
			[]string{"targetRepository:", `"prod//apps/web"`}},
		{"repository with trailing slash", "{{ .Repository }}/", "", "apps/web", "1.0.0",
			[]string{"targetRepository:"}},
		{"stripPrerelease of a non-version", "", "{{ .Tag | stripPrerelease }}", "apps/web", "latest",
			[]string{"targetTag:", "stripPrerelease", `"latest" is not a semantic version`}},
		{"version of a non-version", "", "{{ .Version.Major }}", "apps/web", "latest",
			[]string{"targetTag:", "nil pointer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := mustCompile(t, promotion(func(p *config.Promotion) {
				p.TargetRepository, p.TargetTag = c.targetRepo, c.tmpl
			}))
			repo, tag, err := r.Target(c.repo, c.tag)
			if err == nil {
				t.Fatalf("Target(%q, %q) = %q, %q; want an error", c.repo, c.tag, repo, tag)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FieldError", err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(*config.Promotion)
		want []string
	}{
		{"both semver and regex", func(p *config.Promotion) { p.Tags = config.TagFilter{Semver: ">=1.0.0", Regex: ".*"} },
			[]string{"tags: set semver or regex, not both"}},
		{"bad semver", func(p *config.Promotion) { p.Tags.Semver = ">=banana" },
			[]string{"tags.semver: ", `">=banana"`}},
		{"bad regex", func(p *config.Promotion) { p.Tags.Regex = "release-(" },
			[]string{"tags.regex: ", "missing closing )"}},
		{"unbalanced regex that anchoring would hide", func(p *config.Promotion) { p.Tags.Regex = "a)|(b" },
			[]string{"tags.regex: "}},
		{"template syntax", func(p *config.Promotion) { p.TargetTag = "{{ .Tag " },
			[]string{"targetTag: template: targetTag:1:"}},
		{"unknown function", func(p *config.Promotion) { p.TargetTag = "{{ .Tag | strip }}" },
			[]string{"targetTag: template: ", `function "strip" not defined`}},
		{"unknown field", func(p *config.Promotion) { p.TargetRepository = "{{ .Repo }}" },
			[]string{"targetRepository: template: ", "Repo"}},
		{"unknown version field", func(p *config.Promotion) { p.TargetTag = "{{ .Version.Build }}" },
			[]string{"targetTag: template: ", "Build"}},
		{"registry is not a field", func(p *config.Promotion) { p.TargetRepository = "{{ .Registry }}/x" },
			[]string{"targetRepository: template: ", "Registry"}},
		{"wrong argument count", func(p *config.Promotion) { p.TargetTag = `{{ replace "a" .Tag }}` },
			[]string{"targetTag: template: ", "replace"}},
		{"bad regexReplace pattern", func(p *config.Promotion) { p.TargetTag = `{{ regexReplace "(" "" .Tag }}` },
			[]string{"targetTag: template: ", "regexReplace", "missing closing )"}},
		{"bad glob", func(p *config.Promotion) { p.Repositories = []string{"apps/**", "apps/[web"} },
			[]string{`repositories[1]: "apps/[web" is not a valid glob`}},
		{"empty glob", func(p *config.Promotion) { p.Repositories = []string{""} },
			[]string{"repositories[0]: is empty"}},
		{"negative minAge", func(p *config.Promotion) { p.MinAge = -time.Minute },
			[]string{"minAge: must not be negative"}},
		{"negative approval timeout", func(p *config.Promotion) { p.Approval = config.Approval{Required: true, Timeout: -time.Hour} },
			[]string{"approval.timeout: must not be negative"}},
		{"empty approver", func(p *config.Promotion) { p.Approval = config.Approval{Required: true, Approvers: []string{"rm", ""}} },
			[]string{"approval.approvers[1]: is empty"}},
		{"bad referrer type", func(p *config.Promotion) {
			p.Require = &config.Requirements{Referrers: []string{"application/spdx+json", "cosign signature"}}
		}, []string{`require.referrers[1]: "cosign signature"`}},
		{"missing name and environments", func(p *config.Promotion) { p.Name, p.From, p.To = "", "", "" },
			[]string{"name: is required", "from: is required", "to: is required"}},
		{"same environments", func(p *config.Promotion) { p.To = p.From },
			[]string{"to: must differ from from"}},
		{"every problem at once", func(p *config.Promotion) {
			p.Tags.Semver = "nope"
			p.TargetTag = "{{"
			p.MinAge = -1
		}, []string{"tags.semver: ", "targetTag: template: ", "minAge: "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, err := Compile(promotion(c.mod))
			if err == nil {
				t.Fatalf("Compile = %+v; want an error", r)
			}
			if r != nil {
				t.Errorf("Compile returned a rule with an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "promotions[") {
				t.Errorf("Compile error %q carries the promotions[i] prefix", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FieldError", err)
			}
		})
	}
}

func TestCompileErrorFirstFieldStartsMessage(t *testing.T) {
	t.Parallel()
	_, err := Compile(promotion(func(p *config.Promotion) { p.Tags.Semver = "<<1" }))
	if err == nil || !strings.HasPrefix(err.Error(), "tags.semver: ") {
		t.Fatalf("err = %v; want it to start with tags.semver:", err)
	}
	_, err = Compile(promotion(func(p *config.Promotion) { p.TargetTag = "{{ nope }}" }))
	if err == nil || !strings.HasPrefix(err.Error(), "targetTag: template: ") {
		t.Fatalf("err = %v; want it to start with targetTag: template:", err)
	}
}

func TestTemplateUsingVersionCompiles(t *testing.T) {
	t.Parallel()
	// .Version is nil for non-semver tags, but the trial run uses a version,
	// so a template written for semver rules compiles.
	mustCompile(t, promotion(func(p *config.Promotion) {
		p.Tags.Semver = ">=1.0.0"
		p.TargetTag = "{{ .Version.Major }}.{{ .Version.Minor }}.{{ .Version.Patch }}"
	}))
	// stripPrerelease only fails on data, so it does not fail the trial.
	mustCompile(t, promotion(func(p *config.Promotion) {
		p.Tags.Regex = "release-.*"
		p.TargetTag = `{{ .Tag | trimPrefix "release-" | stripPrerelease }}`
	}))
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	r := mustCompile(t, promotion(nil))
	if !r.CopyReferrers {
		t.Error("CopyReferrers = false when unset; want true")
	}
	if r.Approval.Required || r.Approval.Timeout != 0 {
		t.Errorf("Approval = %+v; want none", r.Approval)
	}
	if r.RequireReferrers != nil || r.MinAge != 0 {
		t.Errorf("RequireReferrers = %v, MinAge = %v", r.RequireReferrers, r.MinAge)
	}

	no := false
	r = mustCompile(t, promotion(func(p *config.Promotion) {
		p.CopyReferrers = &no
		p.Approval = config.Approval{Required: true, Approvers: []string{"release-manager"}}
		p.Require = &config.Requirements{Referrers: []string{"application/vnd.dev.cosign.simplesigning.v1+json", "application/spdx+json"}}
		p.MinAge = 15 * time.Minute
	}))
	if r.CopyReferrers {
		t.Error("CopyReferrers = true; want false as configured")
	}
	if r.Approval.Timeout != DefaultApprovalTimeout || DefaultApprovalTimeout != 72*time.Hour {
		t.Errorf("Approval.Timeout = %v; want 72h", r.Approval.Timeout)
	}
	if len(r.Approval.Approvers) != 1 || r.Approval.Approvers[0] != "release-manager" {
		t.Errorf("Approval.Approvers = %v", r.Approval.Approvers)
	}
	if len(r.RequireReferrers) != 2 || r.MinAge != 15*time.Minute {
		t.Errorf("RequireReferrers = %v, MinAge = %v", r.RequireReferrers, r.MinAge)
	}
	if r.Name != "dev-to-tst" || r.From != "dev" || r.To != "tst" || r.String() != "dev-to-tst (dev → tst)" {
		t.Errorf("rule = %s %s %s %q", r.Name, r.From, r.To, r.String())
	}

	r = mustCompile(t, promotion(func(p *config.Promotion) {
		p.Approval = config.Approval{Required: true, Timeout: 4 * time.Hour}
	}))
	if r.Approval.Timeout != 4*time.Hour {
		t.Errorf("Approval.Timeout = %v; want 4h as configured", r.Approval.Timeout)
	}
}

func TestRuleDoesNotAliasConfig(t *testing.T) {
	t.Parallel()
	p := promotion(func(p *config.Promotion) {
		p.Repositories = []string{"apps/**"}
		p.Require = &config.Requirements{Referrers: []string{"application/spdx+json"}}
		p.Approval.Approvers = []string{"a"}
	})
	r := mustCompile(t, p)
	p.Repositories[0] = "other/**"
	p.Require.Referrers[0] = "x/y"
	p.Approval.Approvers[0] = "b"
	if ok, _ := r.Matches("apps/web", "1"); !ok || r.RequireReferrers[0] != "application/spdx+json" || r.Approval.Approvers[0] != "a" {
		t.Error("the rule changed with the configuration it was compiled from")
	}
}

func TestCompileAll(t *testing.T) {
	t.Parallel()
	ps := []config.Promotion{
		{Name: "dev-to-tst", From: "dev", To: "tst", Repositories: []string{"apps/**"}, Tags: config.TagFilter{Semver: ">=0.0.0-0"}},
		{Name: "tst-to-prd", From: "tst", To: "prd", Tags: config.TagFilter{Semver: ">=1.0.0"}, TargetTag: "{{ .Tag | stripPrerelease }}"},
	}
	rules, err := CompileAll(ps)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Name != "dev-to-tst" || rules[1].Name != "tst-to-prd" {
		t.Fatalf("rules = %v", rules)
	}
	if rules, err := CompileAll(nil); err != nil || len(rules) != 0 {
		t.Fatalf("CompileAll(nil) = %v, %v", rules, err)
	}

	ps = append(ps,
		config.Promotion{Name: "bad", From: "dev", To: "prd", Tags: config.TagFilter{Semver: "1", Regex: "x"}},
		config.Promotion{Name: "dev-to-tst", From: "dev", To: "tst", TargetTag: "{{ .Nope }}"},
	)
	rules, err = CompileAll(ps)
	if err == nil {
		t.Fatalf("CompileAll = %v; want an error", rules)
	}
	for _, w := range []string{
		"promotions[2].tags: set semver or regex, not both",
		"promotions[3].targetTag: template: ",
		`promotions[3].name: "dev-to-tst" is already used by promotions[0]`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "promotions[0]: ") || strings.Contains(err.Error(), "promotions[1].") {
		t.Errorf("error %q blames a good promotion", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "promotions[") {
		t.Errorf("errors.As FieldError = %+v", fe)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := Validate(nil); err != nil {
		t.Errorf("Validate(nil) = %v", err)
	}
	cfg := &config.Config{Promotions: []config.Promotion{promotion(nil)}}
	if err := Validate(cfg); err != nil {
		t.Errorf("Validate = %v", err)
	}
	cfg.Promotions[0].TargetRepository = "{{ .Repository | nope }}"
	err := Validate(cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "promotions[0].targetRepository: template: ") {
		t.Errorf("Validate = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := mustCompile(t, promotion(func(p *config.Promotion) {
		p.Repositories = []string{"apps/**"}
		p.Tags.Semver = ">=0.0.0-0"
		p.TargetRepository = `prod/{{ .Repository | trimPrefix "apps/" }}`
		p.TargetTag = `{{ .Tag | stripPrerelease }}`
	}))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, reason := r.Matches("apps/web", "1.2.3-rc.1"); !ok {
					t.Errorf("goroutine %d: %s", i, reason)
					return
				}
				repo, tag, err := r.Target("apps/web", "1.2.3-rc.1")
				if err != nil || repo != "prod/web" || tag != "1.2.3" {
					t.Errorf("goroutine %d: %q %q %v", i, repo, tag, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestYAMLExamples loads the package doc's examples through the real
// configuration loader, so that the quoting advice holds.
func TestYAMLExamples(t *testing.T) {
	t.Parallel()
	const doc = `
environments:
  - { name: dev, registry: { host: "dev.example" } }
  - { name: tst, registry: { host: "tst.example" } }
  - { name: prd, registry: { host: "prd.example" } }
approvers:
  - { name: release-manager, token: "t" }
promotions:
  - name: dev-to-tst
    from: dev
    to: tst
    repositories: ["apps/**"]
    tags: { semver: ">=0.0.0-0" }
    targetRepository: "{{ .Repository }}"
    targetTag: "{{ .Tag }}"
    approval: { required: false }
    copyReferrers: true
  - name: tst-to-prd
    from: tst
    to: prd
    repositories: ["apps/**"]
    tags: { regex: "^v?[0-9]+\\.[0-9]+\\.[0-9]+$" }
    approval: { required: true, approvers: [release-manager], timeout: 72h }
  - name: strip
    from: tst
    to: prd
    tags: { regex: '.*-rc\.[0-9]+' }
    targetTag: "{{ .Tag | stripPrerelease }}"
  - name: regex-double-quoted
    from: tst
    to: prd
    targetTag: "{{ regexReplace \"-rc\\\\.[0-9]+$\" \"\" .Tag }}"
  - name: regex-backquoted
    from: tst
    to: prd
    targetTag: '{{ regexReplace ` + "`-rc\\.[0-9]+$`" + ` "" .Tag }}'
  - name: regex-group
    from: tst
    to: prd
    targetTag: '{{ regexReplace "^(.*)-rc\\.[0-9]+$" "${1}" .Tag }}'
  - name: repo
    from: tst
    to: prd
    targetRepository: "prod/{{ .Repository | trimPrefix \"apps/\" }}"
`
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg); err != nil {
		t.Fatal(err)
	}
	rules, err := CompileAll(cfg.Promotions)
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason := rules[0].Matches("apps/team/web", "1.0.0-rc.1"); !ok {
		t.Errorf("dev-to-tst: %s", reason)
	}
	if ok, _ := rules[1].Matches("apps/web", "v1.0.0-rc.1"); ok {
		t.Errorf("tst-to-prd matches a release candidate")
	}
	if rules[1].Approval.Timeout != 72*time.Hour {
		t.Errorf("tst-to-prd timeout = %v", rules[1].Approval.Timeout)
	}
	if ok, reason := rules[2].Matches("apps/web", "v1.4.0-rc.2"); !ok {
		t.Errorf("strip: %s", reason)
	}
	for _, r := range rules[2:6] {
		if _, tag, err := r.Target("apps/web", "1.4.0-rc.2"); err != nil || tag != "1.4.0" {
			t.Errorf("%s: Target tag = %q, %v; want 1.4.0", r.Name, tag, err)
		}
	}
	if repo, _, err := rules[6].Target("apps/web", "1.0.0"); err != nil || repo != "prod/web" {
		t.Errorf("repo: Target repository = %q, %v", repo, err)
	}
}
