package cdevents

import (
	"testing"
	"time"
)

func TestSplitImage(t *testing.T) {
	for ref, want := range map[string][4]string{
		"127.0.0.1:5001/apps/web:1.4.0":         {"127.0.0.1:5001", "apps/web", "1.4.0", ""},
		"reg.example/apps/web:1.4.0@sha256:abc": {"reg.example", "apps/web", "1.4.0", "sha256:abc"},
		"reg.example/apps/web@sha256:abc":       {"reg.example", "apps/web", "", "sha256:abc"},
		"localhost/web":                         {"localhost", "web", "", ""},
		"localhost:5000/web:2":                  {"localhost:5000", "web", "2", ""},
		"nginx:1.27":                            {"docker.io", "library/nginx", "1.27", ""},
		"acme/web:3":                            {"docker.io", "acme/web", "3", ""},
	} {
		r, repo, tag, d := splitImage(ref)
		if got := [4]string{r, repo, tag, d}; got != want {
			t.Errorf("splitImage(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"30":                            30 * time.Second,
		"Fri, 01 May 2026 12:01:00 GMT": time.Minute,
		"999999":                        time.Hour,
	} {
		if d, ok := parseRetryAfter(v, now); !ok || d != want {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v", v, d, ok, want)
		}
	}
	for _, v := range []string{"", "0", "-3", "later", "Fri, 01 May 2026 11:00:00 GMT"} {
		if d, ok := parseRetryAfter(v, now); ok {
			t.Errorf("parseRetryAfter(%q) = %v, want none", v, d)
		}
	}
}
