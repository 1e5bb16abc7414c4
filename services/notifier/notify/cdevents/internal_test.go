package cdevents

import "testing"

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
