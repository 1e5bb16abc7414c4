package formats

import (
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
