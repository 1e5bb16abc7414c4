package formats

import (
	"regexp"
	"strings"
	"testing"
)

func TestSplitRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want imageRef
		ok   bool
	}{
		{"ghcr.io/octo/app:v1", imageRef{"ghcr.io", "octo/app", "v1", ""}, true},
		{"ghcr.io/octo/app:", imageRef{"ghcr.io", "octo/app", "", ""}, true},
		{"localhost:5000/a/b@sha256:abc", imageRef{"localhost:5000", "a/b", "", "sha256:abc"}, true},
		{"localhost:5000/a/b:t@sha256:abc", imageRef{"localhost:5000", "a/b", "t", "sha256:abc"}, true},
		{"gcr.io/p/img", imageRef{"gcr.io", "p/img", "", ""}, true},
		{"app:v1", imageRef{}, false},
		{"/app", imageRef{}, false},
		{"host/", imageRef{}, false},
	} {
		got, ok := splitRef(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("splitRef(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestValidators(t *testing.T) {
	good := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		f    func(string) bool
		in   string
		want bool
	}{
		{validRepository, "team/app", true},
		{validRepository, "a/b-c/d__e.f", true},
		{validRepository, "Team/app", false},
		{validRepository, "team//app", false},
		{validRepository, "team/app/", false},
		{validRepository, strings.Repeat("a", 256), false},
		{validDigest, good, true},
		{validDigest, "sha256:" + strings.Repeat("a", 60), false},
		{validDigest, "sha256:" + strings.Repeat("A", 64), false},
		{validDigest, "md5:" + strings.Repeat("a", 32), false},
		{validDigest, "sha512:" + strings.Repeat("b", 128), true},
		{validTag, "", true},
		{validTag, "v1.2.3-rc.1_b", true},
		{validTag, good, true},
		{validTag, ".hidden", false},
		{validTag, "a b", false},
		{validTag, strings.Repeat("a", 129), false},
		{validHost, "localhost:5000", true},
		{validHost, "europe-west1-docker.pkg.dev", true},
		{validHost, "-bad.example", false},
		{validHost, "host:port", false},
	} {
		if got := tc.f(tc.in); got != tc.want {
			t.Errorf("validator(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The grammars the name checks implement, as regular expressions: the
// checks are loops for speed, and must accept exactly these.
var (
	repoPathGrammar      = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)
	tagGrammar           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hostGrammar          = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$`)
	attachmentTagGrammar = regexp.MustCompile(`^sha(256|384|512)-[0-9a-f]{32,128}(\.(sig|att|sbom))?$`)
)

func wantNameGrammars(t *testing.T, s string) {
	t.Helper()
	for _, c := range []struct {
		check     string
		got, want bool
	}{
		{"validRepository", validRepository(s), len(s) <= maxRepoLen && repoPathGrammar.MatchString(s)},
		{"isTag", isTag(s), tagGrammar.MatchString(s)},
		{"validHost", validHost(s), len(s) <= 255 && hostGrammar.MatchString(s)},
		{"IsAttachmentTag", IsAttachmentTag(s), attachmentTagGrammar.MatchString(s)},
	} {
		if c.got != c.want {
			t.Errorf("%s(%q) = %v, the grammar says %v", c.check, s, c.got, c.want)
		}
	}
}

func nameSeeds() []string {
	hex := strings.Repeat("0123456789abcdef", 9)
	return []string{
		"", "a", "A", "0", "a\n", "ü", "team/app", "a/b-c/d__e.f", "a//b", "/a", "a/", "a..b", "a._b",
		"a__b", "a___b", "a-b", "a---b", "a-", "-a", "_a", ".a", "a.b/c_d/e--f", "Team/app",
		"v1.2.3-rc.1_b", ".hidden", "a b", strings.Repeat("a", 128), strings.Repeat("a", 129),
		strings.Repeat("a/", 127) + "a", strings.Repeat("a/", 128) + "a",
		"localhost", "localhost:5000", "a:", ":5000", "a:123456", "a:12345", "1.2.3.4:80", "a-.b", "a.-b",
		"x:1:2", "europe-west1-docker.pkg.dev", "host:port", "a.b.", ".a.b", "[::1]:5000",
		"sha256-" + hex[:64], "sha256-" + hex[:64] + ".sig", "sha384-" + hex[:96] + ".att", "sha512-" + hex[:128] + ".sbom",
		"sha256-" + hex[:64] + ".foo", "sha256-" + hex[:64] + ".", "sha256-" + hex[:31], "sha256-" + hex[:32], "sha256-" + hex[:129],
		"sha1-" + hex[:40], "sha256-ABCDEF" + hex[:32], "sha256" + hex[:64], "sha256-", "sha", "sha256-" + hex[:64] + ".sig.sig",
	}
}

func TestNameChecksFollowTheirGrammars(t *testing.T) {
	for _, s := range nameSeeds() {
		wantNameGrammars(t, s)
	}
}

func FuzzNameChecks(f *testing.F) {
	for _, s := range nameSeeds() {
		f.Add(s)
	}
	f.Fuzz(wantNameGrammars)
}
