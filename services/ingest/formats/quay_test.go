package formats

import "testing"

// testdata/quay: push.json is Red Hat Quay's documented "Repository Push"
// event; push-legacy-map.json the early quay.io sample (updated_tags as an
// object of tag -> image id).

func TestQuayPush(t *testing.T) {
	r := parse(t, "quay", bareDelivery(fixture(t, "quay/push.json")))
	wantEqual(t, r, Result{Pushes: []Push{{
		Registry:   "quay.io",
		Repository: "dgangaia/test",
		Tag:        "latest",
		UpstreamID: Composite("dgangaia/test", "latest"),
	}}})
	wantEqual(t, Normalize(r), r)
}

func TestQuayTags(t *testing.T) {
	r := parse(t, "quay", bareDelivery(fixture(t, "quay/push-tags.json")))
	var tags, ids []string
	for _, p := range r.Pushes {
		if p.Registry != "quay.internal.example:8443" || p.Repository != "acme/web" {
			t.Fatalf("got %+v", p)
		}
		tags, ids = append(tags, p.Tag), append(ids, p.UpstreamID)
	}
	wantEqual(t, tags, []string{"2.3.0", "2.3", "latest"})
	wantEqual(t, ids, []string{Composite("acme/web", "2.3.0"), Composite("acme/web", "2.3"), Composite("acme/web", "latest")})

	t.Run("legacy object", func(t *testing.T) {
		r := parse(t, "quay", bareDelivery(fixture(t, "quay/push-legacy-map.json")))
		if len(r.Pushes) != 1 || r.Pushes[0].Tag != "latest" || r.Pushes[0].Repository != "devtable/ubuntu" {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("listed twice", func(t *testing.T) {
		body := jsonBody(t, map[string]any{"repository": "acme/web", "updated_tags": []string{"v1", "v1"}})
		if r := parse(t, "quay", bareDelivery(body)); len(r.Pushes) != 1 || r.Pushes[0].Registry != "" {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("stable", func(t *testing.T) {
		wantEqual(t, parse(t, "quay", bareDelivery(fixture(t, "quay/push-tags.json"))), r)
	})
}

func TestQuayIgnored(t *testing.T) {
	// Quay sends one notification for a multi-arch push, naming only the
	// tag; children never appear. What remains to drop: signature tags and
	// pushes that moved no tag.
	wantEqual(t, normalized(t, "quay", bareDelivery(fixture(t, "quay/push-signature.json"))), Result{Ignored: 1})
	body := jsonBody(t, map[string]any{"repository": "acme/web", "updated_tags": []string{}})
	wantEqual(t, parse(t, "quay", bareDelivery(body)), Result{Ignored: 1})
}

func TestQuayMalformed(t *testing.T) {
	push := fixture(t, "quay/push.json")
	edit := func(fn func(m map[string]any)) []byte { return patchJSON(t, push, fn) }
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte(`"latest"`), "body is not a JSON object"},
		{"no repository", edit(func(m map[string]any) { delete(m, "repository") }), "repository is missing"},
		{"bad repository", edit(func(m map[string]any) { m["repository"] = "dgangaia/test:latest" }), "is not a valid repository name"},
		{"no updated_tags", edit(func(m map[string]any) { delete(m, "updated_tags") }), "updated_tags is missing"},
		{"updated_tags string", edit(func(m map[string]any) { m["updated_tags"] = "latest" }), "updated_tags is neither a list of tags nor an object"},
		{"updated_tags numbers", edit(func(m map[string]any) { m["updated_tags"] = []any{1} }), "updated_tags is not the expected JSON"},
		{"bad tag", edit(func(m map[string]any) { m["updated_tags"] = []any{"latest", "a/b"} }), `updated_tags "a/b" is not a valid tag`},
		{"docker_url without host", edit(func(m map[string]any) { m["docker_url"] = "test" }), `docker_url "test" does not start with a registry host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantMalformed(t, "quay", bareDelivery(tc.body), tc.want)
		})
	}
}

func FuzzQuay(f *testing.F) {
	seedFixtures(f, "quay", `{"repository":"a/b","updated_tags":{"x":1,"y":null}}`, `{"repository":"a/b","updated_tags":[""]}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "quay", bareDelivery(body))
	})
}
