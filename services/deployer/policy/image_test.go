package policy

import (
	"strings"
	"testing"
)

const (
	dgA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dgB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestParseImageNormalises(t *testing.T) {
	tests := []struct {
		in   string
		want Image
	}{
		// Docker Hub, however it is written.
		{"nginx", Image{"docker.io", "library/nginx", "latest", ""}},
		{"nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"library/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"docker.io/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"docker.io/library/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"index.docker.io/library/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"index.docker.io/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"registry-1.docker.io/library/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"Docker.IO/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"index.docker.io:443/nginx:1.25", Image{"docker.io", "library/nginx", "1.25", ""}},
		{"bitnami/redis:7", Image{"docker.io", "bitnami/redis", "7", ""}},
		{"docker.io/bitnami/redis:7", Image{"docker.io", "bitnami/redis", "7", ""}},
		// Only the default HTTPS port is dropped; another port is another registry.
		{"index.docker.io:5000/nginx", Image{"index.docker.io:5000", "nginx", "latest", ""}},

		// Other registries: host lowercased, :443 dropped, other ports kept.
		{"r.example/apps/web:1.2.3", Image{"r.example", "apps/web", "1.2.3", ""}},
		{"r.example:443/apps/web:1.2.3", Image{"r.example", "apps/web", "1.2.3", ""}},
		{"Registry.Prod.EXAMPLE:443/apps/web:1.2.3", Image{"registry.prod.example", "apps/web", "1.2.3", ""}},
		{"127.0.0.1:5001/apps/web:1.2.3", Image{"127.0.0.1:5001", "apps/web", "1.2.3", ""}},
		{"127.0.0.1:5001/web", Image{"127.0.0.1:5001", "web", "latest", ""}},
		{"localhost/web", Image{"localhost", "web", "latest", ""}},
		{"LocalHost:5000/web:v1", Image{"localhost:5000", "web", "v1", ""}},
		{"localhost:443/web", Image{"localhost", "web", "latest", ""}},
		{"[::1]:5000/web", Image{"[::1]:5000", "web", "latest", ""}},
		{"[::1]:443/web", Image{"[::1]", "web", "latest", ""}},
		{"[FE80::1]/web", Image{"[fe80::1]", "web", "latest", ""}},
		// Dropping the port would make "registry" read as a Docker Hub namespace.
		{"registry:443/web", Image{"registry:443", "web", "latest", ""}},
		{"registry:5000/web", Image{"registry:5000", "web", "latest", ""}},
		// A dotless first segment is a Docker Hub namespace, as in Docker.
		{"myorg/web", Image{"docker.io", "myorg/web", "latest", ""}},
		{"r.example/a/b/c/d:x", Image{"r.example", "a/b/c/d", "x", ""}},
		{"r.example/my_app.v2/web-ui__x:1", Image{"r.example", "my_app.v2/web-ui__x", "1", ""}},

		// Tags and digests.
		{"r.example/web:Release_1.2-RC", Image{"r.example", "web", "Release_1.2-RC", ""}},
		{"r.example/web@" + dgA, Image{"r.example", "web", "", dgA}},
		{"r.example/web:1.2.3@" + dgA, Image{"r.example", "web", "1.2.3", dgA}},
		{"nginx@" + dgA, Image{"docker.io", "library/nginx", "", dgA}},
		{"127.0.0.1:5001/web@" + dgA, Image{"127.0.0.1:5001", "web", "", dgA}},
		{"r.example/web:" + strings.Repeat("t", 128), Image{"r.example", "web", strings.Repeat("t", 128), ""}},
		{"r.example/web@sha512:" + strings.Repeat("c", 128), Image{"r.example", "web", "", "sha512:" + strings.Repeat("c", 128)}},
		// Distribution's image name for a host-less "host:port" is a tag, as in Docker.
		{"web:5000", Image{"docker.io", "library/web", "5000", ""}},

		// Surrounding whitespace (as in hand-written app definitions).
		{"  nginx:1.25\n", Image{"docker.io", "library/nginx", "1.25", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseImage(tt.in)
			if err != nil {
				t.Fatalf("ParseImage(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseImage(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			again, err := ParseImage(got.String())
			if err != nil || again != got {
				t.Fatalf("ParseImage(%q) = %#v, %v; want %#v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseImageSameImageComparesEqual(t *testing.T) {
	groups := [][]string{
		{"nginx", "nginx:latest", "library/nginx", "docker.io/nginx:latest", "index.docker.io/library/nginx", "registry-1.docker.io:443/library/nginx:latest"},
		{"r.example/web:1", "R.EXAMPLE/web:1", "r.example:443/web:1", " r.example/web:1 "},
	}
	for _, g := range groups {
		first, err := ParseImage(g[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range g[1:] {
			got, err := ParseImage(s)
			if err != nil {
				t.Fatal(err)
			}
			if got != first {
				t.Errorf("ParseImage(%q) = %v, want the same as %q (%v)", s, got, g[0], first)
			}
		}
	}
	// Different ports and different repositories stay different.
	a, _ := ParseImage("127.0.0.1:5001/web")
	b, _ := ParseImage("127.0.0.1:5002/web")
	if a == b || a.RepoKey() == b.RepoKey() {
		t.Errorf("%v and %v must differ", a, b)
	}
}

func TestParseImageRejects(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "empty"},
		{"   ", "empty"},
		{"Nginx", "must be lowercase"},
		{"r.example/Apps/web:1", "must be lowercase"},
		{"MyOrg/web", "must be lowercase"},
		{"r.example/web:", "empty tag"},
		{"r.example/web:-x", "invalid tag"},
		{"r.example/web:.x", "invalid tag"},
		{"r.example/web:a+b", "invalid tag"},
		{"r.example/web:" + strings.Repeat("t", 129), "more than 128"},
		{"r.example/web@sha256:abc", "at least 32"},
		{"r.example/web@sha256:" + strings.Repeat("a", 40), "64 hex digits"},
		{"r.example/web@sha512:" + strings.Repeat("a", 64), "128 hex digits"},
		{"r.example/web@sha256:" + strings.Repeat("A", 64), "lowercase hex"},
		{"r.example/web@" + strings.Repeat("a", 64), "want algorithm:hex"},
		{"r.example/web@SHA256:" + strings.Repeat("a", 64), "want algorithm:hex"},
		{"r.example/web@sha256:" + strings.Repeat("a", 64) + "@" + dgB, "lowercase hex"},
		{"r.example/web@", "want algorithm:hex"},
		{"r.example/", "empty repository"},
		{"r.example//web", "invalid path component"},
		{"r.example/web/", "invalid path component"},
		{"r.example/-web", "invalid path component"},
		{"r.example/we..b", "invalid path component"},
		{"r.example/we___b", "invalid path component"},
		{"/web", "invalid path component"},
		{"r.example:0/web", "invalid port"},
		{"r.example:080/web", "invalid port"},
		{"r.example:65536/web", "invalid port"},
		{"r.example:/web", "invalid port"},
		{"r.example:+80/web", "invalid port"},
		{"r.example:80:81/web", "invalid port"},
		{"r.-example/web", "invalid host"},
		{"r..example/web", "invalid host"},
		{"r.example./web", "invalid host"},
		{"https://r.example/web", "invalid port"},
		{"[::1/web", "unterminated IPv6"},
		{"[::g]/web", "invalid IPv6"},
		{"[::1]x/web", "after IPv6"},
		{"r.example/" + strings.Repeat("a", 246), "more than 255"},
		{"nginx " + "x", "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseImage(tt.in)
			if err == nil {
				t.Fatalf("ParseImage(%q) = %#v, want error containing %q", tt.in, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseImage(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), `"`+tt.in+`"`) && !strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error %q does not name the reference %q", err, tt.in)
			}
		})
	}
}

func TestNameLengthCountsNormalisedForm(t *testing.T) {
	// len("docker.io/library/") + 237 = 255: fits; one more does not. The limit
	// applies after normalisation so that String() always parses back.
	ok := strings.Repeat("a", 237)
	if _, err := ParseImage(ok); err != nil {
		t.Fatalf("%d-character name: %v", len("docker.io/library/"+ok), err)
	}
	if _, err := ParseImage(ok + "a"); err == nil {
		t.Fatalf("%d-character name accepted", len("docker.io/library/"+ok+"a"))
	}
}

func TestImageAccessors(t *testing.T) {
	img, err := ParseImage("127.0.0.1:5001/apps/web:1.2.3@" + dgA)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.RepoKey(), "127.0.0.1:5001/apps/web"; got != want {
		t.Errorf("RepoKey() = %q, want %q", got, want)
	}
	if got, want := img.String(), "127.0.0.1:5001/apps/web:1.2.3@"+dgA; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	next := img.WithTagDigest("1.2.4", dgB)
	if want := (Image{"127.0.0.1:5001", "apps/web", "1.2.4", dgB}); next != want {
		t.Errorf("WithTagDigest = %#v, want %#v", next, want)
	}
	if img.Tag != "1.2.3" {
		t.Errorf("WithTagDigest changed its receiver: %#v", img)
	}
	if got, want := img.WithTagDigest("", dgB).String(), "127.0.0.1:5001/apps/web@"+dgB; got != want {
		t.Errorf("digest-only String() = %q, want %q", got, want)
	}
	if got, want := img.WithTagDigest("v2", "").String(), "127.0.0.1:5001/apps/web:v2"; got != want {
		t.Errorf("tag-only String() = %q, want %q", got, want)
	}
	hub, _ := ParseImage("nginx")
	if got, want := hub.String(), "docker.io/library/nginx:latest"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func FuzzParseImage(f *testing.F) {
	for _, s := range []string{
		"nginx", "nginx:1.25", "docker.io/nginx", "index.docker.io:443/library/nginx:latest",
		"127.0.0.1:5001/apps/web:1.2.3@" + dgA, "r.example:443/web@" + dgB, "localhost/web",
		"[::1]:5000/web", "registry:443/web", "R.Example/web:V1", "web:5000", "a/b/c/d:e",
		"r.example/web@sha512:" + strings.Repeat("c", 128), "", ":", "@", "/", "[", "a@b:c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		img, err := ParseImage(s)
		if err != nil {
			return
		}
		if img.Registry == "" || img.Repository == "" || (img.Tag == "" && img.Digest == "") {
			t.Fatalf("ParseImage(%q) = %#v: missing parts", s, img)
		}
		again, err := ParseImage(img.String())
		if err != nil {
			t.Fatalf("ParseImage(%q).String() = %q does not parse: %v", s, img.String(), err)
		}
		if again != img {
			t.Fatalf("ParseImage(%q) = %#v, but its String() %q parses to %#v", s, img, img.String(), again)
		}
		if again.String() != img.String() {
			t.Fatalf("String() not stable: %q vs %q", img.String(), again.String())
		}
	})
}
