package formats

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The fixtures under testdata/distribution were captured from CNCF
// Distribution 3.1 (htpasswd user ci-bot) while go-containerregistry pushed a
// two-platform OCI index, a cosign-style signature tag, pulled, mounted and
// deleted; only the random port was replaced by 5001. v1-envelope.json is
// Distribution 2.x's own format fixture (several events, no target.tag).

const indexDigest = "sha256:1840ba22849292a22e446bea9126c3ddb5c2477708df487c40b5fb3dcfa65b32"

func distDelivery(t testing.TB, name string) Delivery {
	d := bareDelivery(fixture(t, "distribution/"+name))
	d.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	return d
}

func TestDistributionTaggedPush(t *testing.T) {
	r := parse(t, "distribution", distDelivery(t, "push-index-tagged.json"))
	wantEqual(t, r, Result{Pushes: []Push{{
		Registry:   "127.0.0.1:5001",
		Repository: "team/app",
		Tag:        "v1.2.3",
		Digest:     indexDigest,
		MediaType:  "application/vnd.oci.image.index.v1+json",
		Size:       639,
		Actor:      "ci-bot",
		UpstreamID: "01a20040-1203-757f-8543-78e6cb35d10b",
		PushedAt:   mustTime(t, "2026-11-21T22:35:28.643360865Z"),
	}}})
	wantEqual(t, Normalize(r), r)
}

func TestDistributionMultiArch(t *testing.T) {
	t.Run("one envelope", func(t *testing.T) {
		// Four blobs, two untagged platform manifests, the tagged index.
		r := parse(t, "distribution", distDelivery(t, "multiarch-envelope.json"))
		if len(r.Pushes) != 7 || r.Ignored != 0 {
			t.Fatalf("want the 7 pushes the envelope reports, got %+v", r)
		}
		n := Normalize(r)
		if len(n.Pushes) != 1 || n.Ignored != 6 || n.Pushes[0].Tag != "v1.2.3" || n.Pushes[0].Digest != indexDigest {
			t.Fatalf("want only the tagged index after Normalize, got %+v", n)
		}
	})
	t.Run("one request per event", func(t *testing.T) {
		n := normalized(t, "distribution",
			distDelivery(t, "push-blob.json"),
			distDelivery(t, "push-child-untagged.json"),
			distDelivery(t, "push-index-tagged.json"))
		if len(n.Pushes) != 1 || n.Ignored != 2 || n.Pushes[0].Digest != indexDigest {
			t.Fatalf("want only the tagged index, got %+v", n)
		}
	})
}

func TestDistributionIgnored(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		// raw: the parser itself ignores it; otherwise it reports a push
		// that Normalize drops.
		raw bool
	}{
		{"pull.json", true},
		{"mount.json", true},
		{"delete-tag.json", true},
		{"delete-manifest.json", true},
		{"push-blob.json", false},
		{"push-child-untagged.json", false},
		{"push-signature-tag.json", false},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			r := parse(t, "distribution", distDelivery(t, tc.fixture))
			if tc.raw && (len(r.Pushes) != 0 || r.Ignored != 1) {
				t.Fatalf("want ignored by the parser, got %+v", r)
			}
			if n := Normalize(r); len(n.Pushes) != 0 || n.Ignored != 1 {
				t.Fatalf("want ignored after Normalize, got %+v", n)
			}
		})
	}
	t.Run("unknown action", func(t *testing.T) {
		// GitLab's fork adds actions (rename); refusing them would block
		// the registry's queue.
		r := parse(t, "distribution", bareDelivery([]byte(`{"events":[{"id":"x","action":"rename","target":{"repository":"a/b"}}]}`)))
		wantEqual(t, r, Result{Ignored: 1})
	})
	t.Run("empty envelope", func(t *testing.T) {
		wantEqual(t, parse(t, "distribution", bareDelivery([]byte(`{"events":[]}`))), Result{})
	})
}

func TestDistributionV1Envelope(t *testing.T) {
	d := bareDelivery(fixture(t, "distribution/v1-envelope.json"))
	d.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v1+json")
	r := parse(t, "distribution", d)
	if len(r.Pushes) != 3 {
		t.Fatalf("want 3 pushes, got %+v", r)
	}
	p := r.Pushes[0]
	if p.Registry != "registrycluster.local" || p.Actor != "test-actor" || p.Size != 1 || p.UpstreamID != "asdf-asdf-asdf-asdf-0" ||
		!p.PushedAt.Equal(mustTime(t, "2006-01-02T15:04:05Z")) {
		t.Fatalf("unexpected first push %+v", p)
	}
	// Registries before 2.7 never name the tag: nothing is a release.
	if n := Normalize(r); len(n.Pushes) != 0 || n.Ignored != 3 {
		t.Fatalf("want all dropped, got %+v", n)
	}
}

func TestDistributionFieldFallbacks(t *testing.T) {
	raw := fixture(t, "distribution/push-index-tagged.json")
	t.Run("host from target.url, size from length", func(t *testing.T) {
		body := patchJSON(t, raw, func(m map[string]any) {
			ev := jsonAt(m, "events", 0)
			delete(ev, "request")
			delete(jsonAt(ev, "target"), "size")
			jsonAt(ev, "target")["url"] = "https://registry.example.com:5443/v2/team/app/manifests/" + indexDigest
		})
		p := parse(t, "distribution", bareDelivery(body)).Pushes[0]
		if p.Registry != "registry.example.com:5443" || p.Size != 639 {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("no host at all", func(t *testing.T) {
		body := patchJSON(t, raw, func(m map[string]any) {
			ev := jsonAt(m, "events", 0)
			delete(ev, "request")
			delete(jsonAt(ev, "target"), "url")
		})
		if p := parse(t, "distribution", bareDelivery(body)).Pushes[0]; p.Registry != "" {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("no id: composite key", func(t *testing.T) {
		body := patchJSON(t, raw, func(m map[string]any) { delete(jsonAt(m, "events", 0), "id") })
		p := parse(t, "distribution", bareDelivery(body)).Pushes[0]
		want := Composite("127.0.0.1:5001", "team/app", "v1.2.3", indexDigest, "push", "2026-11-21T22:35:28.643360865Z")
		if p.UpstreamID != want {
			t.Fatalf("upstream id %q, want %q", p.UpstreamID, want)
		}
	})
}

func TestDistributionUpstreamIDStable(t *testing.T) {
	a := parse(t, "distribution", distDelivery(t, "multiarch-envelope.json"))
	b := parse(t, "distribution", distDelivery(t, "multiarch-envelope.json"))
	wantEqual(t, a, b)
	seen := map[string]bool{}
	for _, p := range a.Pushes {
		if seen[p.UpstreamID] {
			t.Fatalf("upstream id %q used twice in one envelope", p.UpstreamID)
		}
		seen[p.UpstreamID] = true
	}
}

func TestDistributionMalformed(t *testing.T) {
	good := fixture(t, "distribution/push-index-tagged.json")
	edit := func(fn func(ev map[string]any)) []byte {
		return patchJSON(t, good, func(m map[string]any) { fn(jsonAt(m, "events", 0)) })
	}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("registry says hi"), "body is not a JSON object"},
		{"empty", nil, "body is not a JSON object"},
		{"array", []byte(`[{"action":"push"}]`), "body is not a JSON object"},
		{"trailing garbage", append(append([]byte{}, good...), '}'), "body is not the expected JSON"},
		{"no events", []byte(`{"event":[]}`), "events is missing"},
		{"null events", []byte(`{"events":null}`), "events is missing"},
		{"events not array", []byte(`{"events":{"action":"push"}}`), "events is not an array"},
		{"event not object", []byte(`{"events":[{"action":"pull"},"push"]}`), "events[1] is not a JSON object"},
		{"no action", edit(func(ev map[string]any) { delete(ev, "action") }), "events[0].action is missing"},
		{"no target", edit(func(ev map[string]any) { delete(ev, "target") }), "events[0].target is missing"},
		{"no repository", edit(func(ev map[string]any) { delete(jsonAt(ev, "target"), "repository") }), "events[0].target.repository is missing"},
		{"repository not string", edit(func(ev map[string]any) { jsonAt(ev, "target")["repository"] = 42 }), "events[0] is not the expected JSON"},
		{"bad repository", edit(func(ev map[string]any) { jsonAt(ev, "target")["repository"] = "Team/App" }), "events[0].target.repository \"Team/App\" is not a valid repository name"},
		{"no digest", edit(func(ev map[string]any) { delete(jsonAt(ev, "target"), "digest") }), "events[0].target.digest is missing"},
		{"bad digest", edit(func(ev map[string]any) { jsonAt(ev, "target")["digest"] = "sha256:abc" }), "events[0].target.digest \"sha256:abc\" is not a valid digest"},
		{"bad tag", edit(func(ev map[string]any) { jsonAt(ev, "target")["tag"] = "v1 final" }), "events[0].target.tag \"v1 final\" is not a valid tag"},
		{"negative size", edit(func(ev map[string]any) { jsonAt(ev, "target")["size"] = -1 }), "events[0].target.size is negative"},
		{"bad timestamp", edit(func(ev map[string]any) { ev["timestamp"] = "yesterday" }), "events[0].timestamp \"yesterday\" is not a timestamp"},
		{"timestamp before year 0", edit(func(ev map[string]any) { ev["timestamp"] = "0000-01-01T00:00:00+01:00" }), "is outside the years 0 to 9999"},
		{"bad host", edit(func(ev map[string]any) { jsonAt(ev, "request")["host"] = "evil host/x" }), "events[0].request.host \"evil host/x\" is not a host[:port]"},
		{"bad url", edit(func(ev map[string]any) {
			delete(ev, "request")
			jsonAt(ev, "target")["url"] = "/v2/team/app/manifests/x"
		}), "events[0].target.url \"/v2/team/app/manifests/x\" is not an absolute URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantMalformed(t, "distribution", bareDelivery(tc.body), tc.want)
		})
	}
	t.Run("later event", func(t *testing.T) {
		body := patchJSON(t, fixture(t, "distribution/multiarch-envelope.json"), func(m map[string]any) {
			delete(jsonAt(m, "events", 2, "target"), "repository")
		})
		wantMalformed(t, "distribution", bareDelivery(body), "events[2].target.repository is missing")
	})
}

// GitLab registers the Distribution parser under its own name.
func TestGitlab(t *testing.T) {
	d := bareDelivery(fixture(t, "gitlab/push-multiarch.json"))
	d.Header = http.Header{"Content-Type": {"application/vnd.docker.distribution.events.v1+json"}}
	n := Normalize(parse(t, "gitlab", d))
	wantEqual(t, n, Result{Ignored: 3, Pushes: []Push{{
		Registry:   "registry.gitlab.example.com",
		Repository: "group/project/app",
		Tag:        "1.4.0",
		Digest:     "sha256:3b7a9c5e1d4f6a8b0c2d3e5f7a9b1c4d6e8f0a2b3c5d7e9f1a4b6c8d0e2f3a5b",
		MediaType:  "application/vnd.oci.image.index.v1+json",
		Size:       692,
		Actor:      "gitlab-ci-token",
		UpstreamID: "8c1c5e5e-6b4c-4a4e-9d3e-0f3b2c1d4e04",
		PushedAt:   mustTime(t, "2024-05-02T09:14:14.511830942Z"),
	}}})
	wantMalformed(t, "gitlab", bareDelivery([]byte(`{"events":[{"id":"x"}]}`)), "gitlab: events[0].action is missing")
}

func FuzzDistribution(f *testing.F) {
	seedFixtures(f, "distribution",
		`{"events":[]}`, `{"events":null}`, `{"events":[null]}`, `{"events":[{"action":"push","target":{}}]}`,
		`{"events":[{"action":"push","target":{"repository":"a","digest":"sha256:`+strings.Repeat("0", 64)+`","url":"http://[::1"}}]}`)
	seedFixtures(f, "gitlab")
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "distribution", bareDelivery(body))
		// GitLab is the same parser under another name.
		d, derr := parsers["distribution"](bareDelivery(body))
		g, gerr := parsers["gitlab"](bareDelivery(body))
		if (derr == nil) != (gerr == nil) || !reflect.DeepEqual(d, g) {
			t.Fatalf("gitlab and distribution differ: %+v %v / %+v %v", g, gerr, d, derr)
		}
	})
}
