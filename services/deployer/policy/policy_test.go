package policy

import (
	"strconv"
	"strings"
	"testing"
)

func web(tag, digest string) Image { return Image{"r.example", "apps/web", tag, digest} }

func mustParse(t *testing.T, label string) Policy {
	t.Helper()
	p, err := Parse(label)
	if err != nil {
		t.Fatalf("Parse(%q): %v", label, err)
	}
	return p
}

// TestKeywordPolicies is the matrix of the six keyword policies. want has one
// letter per policy in the order all, major, minor, patch, force, digest:
// Y accepted, N rejected.
func TestKeywordPolicies(t *testing.T) {
	policies := []string{"all", "major", "minor", "patch", "force", "digest"}
	tests := []struct {
		name       string
		cur, cand  Image
		want       string
		reasonHint string // in every semver policy's rejection Reason, when set
	}{
		// Higher, lower and equal releases.
		{"patch bump", web("1.2.3", ""), web("1.2.4", ""), "YYYYYN", ""},
		{"minor bump", web("1.2.3", ""), web("1.3.0", ""), "YYYNYN", ""},
		{"major bump", web("1.2.3", ""), web("2.0.0", ""), "YYNNYN", ""},
		{"numeric not lexical order", web("1.9.9", ""), web("1.10.0", ""), "YYYNYN", ""},
		{"zero major minor bump", web("0.9.0", ""), web("0.10.0", ""), "YYYNYN", ""},
		{"patch bump with digests", web("1.2.3", dgA), web("1.2.4", dgB), "YYYYYN", ""},
		{"lower patch", web("1.2.3", ""), web("1.2.2", ""), "NNNNYN", "lower"},
		{"lower major", web("2.0.0", ""), web("1.9.9", ""), "NNNNYN", "lower"},
		{"older push arriving late", web("1.3.0", dgB), web("1.2.0", dgA), "NNNNYN", "lower"},

		// Same tag: new digest is for digest and force only.
		{"same tag no digests", web("1.2.3", ""), web("1.2.3", ""), "NNNNNN", "already runs"},
		{"same tag same digest", web("1.2.3", dgA), web("1.2.3", dgA), "NNNNNN", "already runs"},
		{"same tag new digest", web("1.2.3", dgA), web("1.2.3", dgB), "NNNNYY", "not a new version"},
		{"tag-pinned app, tag gets a digest", web("1.2.3", ""), web("1.2.3", dgB), "NNNNYY", "not a new version"},
		{"same tag, candidate digest unknown", web("1.2.3", dgA), web("1.2.3", ""), "NNNNNN", "nothing shows"},
		{"latest rebuilt", web("latest", dgA), web("latest", dgB), "NNNNYY", "not a new version"},

		// v prefix and short versions.
		{"v prefix both", web("v1.2.3", ""), web("v1.2.4", ""), "YYYYYN", ""},
		{"v prefix current only", web("v1.2.3", ""), web("1.2.4", ""), "YYYYYN", ""},
		{"v prefix candidate only", web("1.2.3", ""), web("v1.3.0", ""), "YYYNYN", ""},
		{"same version other spelling", web("1.2.3", ""), web("v1.2.3", ""), "NNNNYN", "same version"},
		{"major.minor is .0", web("1.2", ""), web("1.2.1", ""), "YYYYYN", ""},
		{"major.minor minor bump", web("1.2", ""), web("1.3", ""), "YYYNYN", ""},
		{"major.minor equals .0", web("1.2", ""), web("1.2.0", ""), "NNNNYN", "same version"},

		// Pre-releases in both directions.
		{"release to pre-release minor", web("1.2.3", ""), web("1.3.0-rc.1", ""), "YNNNYN", "pre-release"},
		{"release to pre-release patch", web("1.2.3", ""), web("1.2.4-rc.1", ""), "YNNNYN", "pre-release"},
		{"release to pre-release major", web("1.2.3", ""), web("2.0.0-alpha", ""), "YNNNYN", "pre-release"},
		{"release to its own pre-release", web("1.2.3", ""), web("1.2.3-rc.1", ""), "NNNNYN", "lower"},
		{"pre-release to next pre-release", web("2.0.0-rc.1", ""), web("2.0.0-rc.2", ""), "YYYYYN", ""},
		{"pre-release to its release", web("2.0.0-rc.1", ""), web("2.0.0", ""), "YYYYYN", ""},
		{"pre-release to older pre-release", web("2.0.0-rc.2", ""), web("2.0.0-rc.1", ""), "NNNNYN", "lower"},
		{"alpha to beta with v", web("v1.0.0-alpha", ""), web("v1.0.0-beta", ""), "YYYYYN", ""},
		{"pre-release to pre-release of next minor", web("2.0.0-rc.1", ""), web("2.1.0-beta.1", ""), "YYYNYN", ""},
		{"pre-release to next major release", web("1.9.0-rc.1", ""), web("2.0.0", ""), "YYNNYN", ""},
		{"release to older pre-release", web("2.0.0", ""), web("2.0.0-rc.1", ""), "NNNNYN", "lower"},

		// Tags that are not versions.
		{"latest to version", web("latest", ""), web("1.2.3", ""), "NNNNYN", "running tag \"latest\" is not a semantic version"},
		{"version to latest", web("1.2.3", ""), web("latest", ""), "NNNNYN", "candidate tag \"latest\" is not a semantic version"},
		{"branch names", web("main", ""), web("feature-x", ""), "NNNNYN", "not a semantic version"},
		{"build numbers", web("42", ""), web("43", ""), "NNNNYN", "not a semantic version"},
		{"dates", web("20240101", ""), web("20240102", ""), "NNNNYN", "not a semantic version"},
		{"four parts", web("1.2.3", ""), web("1.2.3.4", ""), "NNNNYN", "not a semantic version"},
		{"sha tag", web("1.2.3", ""), web("sha-0a1b2c", ""), "NNNNYN", "not a semantic version"},
		{"running by digest only", web("", dgA), web("1.2.4", dgB), "NNNNYN", "not a semantic version"},

		// Candidates that never deploy.
		{"untagged push", web("1.2.3", dgA), web("", dgB), "NNNNNN", "no tag"},
		{"untagged push over digest-pinned app", web("", dgA), web("", dgB), "NNNNNN", "no tag"},
		{"other repository", web("1.2.3", ""), Image{"r.example", "apps/api", "1.2.4", ""}, "NNNNNN", "not the repository"},
		{"other registry", web("1.2.3", ""), Image{"r2.example", "apps/web", "1.2.4", ""}, "NNNNNN", "not the repository"},
	}
	for _, tt := range tests {
		if len(tt.want) != len(policies) {
			t.Fatalf("%s: want %q has %d letters, need %d", tt.name, tt.want, len(tt.want), len(policies))
		}
		for i, label := range policies {
			t.Run(tt.name+"/"+label, func(t *testing.T) {
				d := mustParse(t, label).Accept(tt.cur, tt.cand)
				want := tt.want[i] == 'Y'
				if d.OK != want {
					t.Fatalf("%s.Accept(%v, %v) = %+v, want OK=%v", label, tt.cur, tt.cand, d, want)
				}
				if d.Reason == "" {
					t.Fatalf("%s.Accept(%v, %v): empty Reason", label, tt.cur, tt.cand)
				}
				if !d.OK && i < 4 && tt.reasonHint != "" && !strings.Contains(d.Reason, tt.reasonHint) {
					t.Fatalf("%s.Accept(%v, %v).Reason = %q, want it to mention %q", label, tt.cur, tt.cand, d.Reason, tt.reasonHint)
				}
			})
		}
	}
}

// An event for an older push can arrive after a newer one was deployed (a
// registry retry, a redelivery). Semver policies compare with what runs, so
// they need no push times to stay put.
func TestSemverIgnoresLateOlderEvent(t *testing.T) {
	running := web("1.3.0", dgB)
	late := web("1.2.0", dgA)
	for _, label := range []string{"all", "major", "minor", "patch"} {
		d := mustParse(t, label).Accept(running, late)
		if d.OK {
			t.Errorf("%s: late 1.2.0 accepted over running 1.3.0: %+v", label, d)
		}
		if !strings.Contains(d.Reason, `"1.2.0" is lower than running "1.3.0"`) {
			t.Errorf("%s: Reason %q does not say why", label, d.Reason)
		}
	}
}

func TestPatternPolicies(t *testing.T) {
	tests := []struct {
		label     string
		cur, cand Image
		want      bool
	}{
		{"glob:1.*", web("1.2.3", ""), web("1.3.0", ""), true},
		{"glob:1.*", web("1.2.3", ""), web("2.0.0", ""), false},
		{"glob:1.*", web("1.2.3", ""), web("1.2.2", ""), true}, // lower is fine: ordering is the caller's
		{"glob:1.*", web("1.2.3", dgA), web("1.2.3", dgB), true},
		{"glob:1.*", web("1.2.3", ""), web("1.2.3", dgB), true},
		{"glob:1.*", web("1.2.3", dgA), web("1.2.3", dgA), false},
		{"glob:1.*", web("1.2.3", ""), web("1.2.3", ""), false},
		{"glob:1.*", web("1.2.3", dgA), web("1.2.3", ""), false},
		{"glob:1.*", web("main", ""), web("1.0.0", ""), true}, // the running tag need not match
		{"glob:1.*", web("1.2.3", ""), web("11.0", ""), false},
		{"glob:release-?", web("release-1", ""), web("release-2", ""), true},
		{"glob:release-?", web("release-1", ""), web("release-10", ""), false},
		{"glob:v[0-9].*", web("v1.0", ""), web("v2.0", ""), true},
		{"glob:v[0-9].*", web("v1.0", ""), web("vx.0", ""), false},
		{"glob:v[^0-9]*", web("v1.0", ""), web("vx.0", ""), true},
		{"glob:*-prod", web("a-prod", ""), web("b-prod", ""), true},
		{"glob:*-prod", web("a-prod", ""), web("b-prod-1", ""), false},
		{"glob:*", web("anything", dgA), web("else", dgB), true},
		{"glob:*", web("1.2.3", dgA), web("", dgB), false},
		{"glob:stable", web("stable", dgA), web("stable", dgB), true},
		{"glob:STABLE", web("stable", dgA), web("stable", dgB), false}, // tags are case sensitive

		{`regexp:1\.2\..*`, web("1.2.3", ""), web("1.2.7", ""), true},
		{`regexp:1\.2\..*`, web("1.2.3", ""), web("11.2.7", ""), false}, // anchored at the start
		{`regexp:1\.2`, web("1.2", ""), web("1.2.7", ""), false},        // anchored at the end
		{`regexp:^v\d+\.\d+$`, web("v1.0", ""), web("v1.1", ""), true},  // explicit anchors still work
		{`regexp:^v\d+\.\d+$`, web("v1.0", ""), web("v1.1.0", ""), false},
		{`regexp:rc`, web("1.0", ""), web("1.1-rc", ""), false},
		{`regexp:rc`, web("1.0", ""), web("rc", ""), true},
		{`regexp:a|b`, web("x", ""), web("a", ""), true},
		{`regexp:a|b`, web("x", ""), web("xa", ""), false}, // the anchors wrap the whole alternation
		{`regexp:a|b`, web("x", ""), web("bx", ""), false},
		{`regexp:(?i)rc-.*`, web("x", ""), web("RC-1", ""), true},
		{`regexp:main-[0-9a-f]{7}`, web("main-0a1b2c3", dgA), web("main-4d5e6f7", dgB), true},
		{`regexp:main-[0-9a-f]{7}`, web("main-0a1b2c3", dgA), web("main-0a1b2c3", dgA), false},
		{`regexp:main-[0-9a-f]{7}`, web("main-0a1b2c3", dgA), web("main-0a1b2c3", dgB), true},
		{`regexp:.*`, web("1.2.3", ""), web("1.2.4", ""), true},
		{`regexp:.*`, web("1.2.3", ""), Image{"r.example", "apps/api", "1.2.4", ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.label+"/"+tt.cur.String()+"->"+tt.cand.String(), func(t *testing.T) {
			d := mustParse(t, tt.label).Accept(tt.cur, tt.cand)
			if d.OK != tt.want {
				t.Fatalf("%s.Accept(%v, %v) = %+v, want OK=%v", tt.label, tt.cur, tt.cand, d, tt.want)
			}
			if d.Reason == "" {
				t.Fatal("empty Reason")
			}
		})
	}
}

// Whatever the policy, an app is never redeployed with what it runs.
func TestNoPolicyAcceptsWhatRuns(t *testing.T) {
	labels := []string{"all", "major", "minor", "patch", "force", "digest", "glob:*", "regexp:.*"}
	images := []Image{
		web("1.2.3", ""), web("1.2.3", dgA), web("latest", ""), web("latest", dgB),
		web("", dgA), web("v2.0.0-rc.1", ""), {"docker.io", "library/nginx", "latest", ""},
	}
	for _, label := range labels {
		p := mustParse(t, label)
		for _, img := range images {
			if d := p.Accept(img, img); d.OK {
				t.Errorf("%s.Accept(%v, %v) = %+v", label, img, img, d)
			}
		}
	}
}

func TestAcceptReasons(t *testing.T) {
	tests := []struct {
		label     string
		cur, cand Image
		want      string
	}{
		{"patch", web("1.2.3", ""), web("1.2.4", ""), `policy patch: "1.2.4" is higher than running "1.2.3"`},
		{"minor", web("1.2.3", ""), web("2.0.0", ""), `changes the major version`},
		{"patch", web("1.2.3", ""), web("1.3.0", ""), `changes the major or minor version`},
		{"force", web("1.2.3", ""), web("1.2.4", ""), `policy force: tag "1.2.3" → "1.2.4"`},
		{"force", web("", dgA), web("1.2.4", ""), `tag (none, pinned by digest) → "1.2.4"`},
		{"digest", web("1.2.3", dgA), web("1.2.3", dgB), `policy digest: tag "1.2.3" moved from sha256:aaaaaaaaaaaa to sha256:bbbbbbbbbbbb`},
		{"digest", web("1.2.3", ""), web("1.2.3", dgB), `moved from unknown digest to sha256:bbbbbbbbbbbb`},
		{"digest", web("1.2.3", dgA), web("1.2.4", dgB), `only follows new digests of the same tag`},
		{"glob:1.*", web("1.2.3", ""), web("2.0.0", ""), `policy glob:1.*: candidate tag "2.0.0" does not match`},
		{`regexp:1\..*`, web("1.2.3", ""), web("2.0.0", ""), `does not match the whole expression`},
	}
	for _, tt := range tests {
		d := mustParse(t, tt.label).Accept(tt.cur, tt.cand)
		if !strings.Contains(d.Reason, tt.want) {
			t.Errorf("%s.Accept(%v, %v).Reason = %q, want it to contain %q", tt.label, tt.cur, tt.cand, d.Reason, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	valid := []struct{ in, want string }{
		{"all", "all"},
		{"major", "major"},
		{"minor", "minor"},
		{"patch", "patch"},
		{"force", "force"},
		{"digest", "digest"},
		{"  major\n", "major"},
		{"glob:1.*", "glob:1.*"},
		{" glob:release-? ", "glob:release-?"},
		{`glob:v[0-9]\*`, `glob:v[0-9]\*`},
		{`regexp:^v\d+\.\d+$`, `regexp:^v\d+\.\d+$`},
		{"regexp:a|b", "regexp:a|b"},
		{"glob:regexp:x", "glob:regexp:x"}, // the first prefix wins; the rest is the pattern
	}
	for _, tt := range valid {
		p, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if p.String() != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, p.String(), tt.want)
		}
	}

	invalid := []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"All", `keywords are lowercase: did you mean "all"?`},
		{"MAJOR", `did you mean "major"?`},
		{"Force", `did you mean "force"?`},
		{"Glob:1.*", `did you mean "glob:1.*"?`},
		{"REGEXP:x", `did you mean "regexp:x"?`},
		{"regex:^v.*", `did you mean "regexp:^v.*"?`},
		{"none", "remove the label"},
		{"never", "remove the label"},
		{"semver", "all, major, minor or patch"},
		{"latest", "unknown policy"},
		{"glob", "unknown policy"},
		{"all,force", "unknown policy"},
		{"glob:", "empty pattern"},
		{"regexp:", "empty pattern"},
		{"glob: 1.*", "whitespace"},
		{"regexp:v.* ", ""}, // trailing whitespace of the whole label is trimmed, so this is valid…
		{"glob:[", "invalid glob"},
		{"glob:[a-", "invalid glob"},
		{`glob:1.*\`, "invalid glob"},
		{"glob:*[", "invalid glob"}, // the bad part follows a '*', which path.Match must still catch
		{"regexp:(", "invalid regular expression"},
		{"regexp:a)|(b", "invalid regular expression"},
		{"regexp:[", "invalid regular expression"},
		{`regexp:\`, "invalid regular expression"},
	}
	for _, tt := range invalid {
		p, err := Parse(tt.in)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Parse(%q): %v", tt.in, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error containing %q", tt.in, p, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
		if trimmed := strings.TrimSpace(tt.in); trimmed != "" && !strings.Contains(err.Error(), strconv.Quote(trimmed)) {
			t.Errorf("Parse(%q) error %q does not name the label value", tt.in, err)
		}
	}
}
