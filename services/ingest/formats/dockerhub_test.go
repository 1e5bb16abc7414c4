package formats

import (
	"testing"
	"time"
)

// testdata/dockerhub: push.json is the example of Docker's webhook
// documentation, push-float-time.json an older payload (pushed_at as a
// float, an images list), push-official.json an official image (namespace
// "library").

func TestDockerHubPush(t *testing.T) {
	r := parse(t, "dockerhub", bareDelivery(fixture(t, "dockerhub/push.json")))
	wantEqual(t, r, Result{Pushes: []Push{{
		Registry:   "docker.io",
		Repository: "svendowideit/testhook",
		Tag:        "latest",
		Actor:      "trustedbuilder",
		UpstreamID: Composite("svendowideit/testhook", "latest", "1417566161"),
		PushedAt:   time.Unix(1417566161, 0).UTC(),
	}}})
	wantEqual(t, Normalize(r), r)
}

func TestDockerHubVariants(t *testing.T) {
	for _, tc := range []struct {
		fixture, repo, tag, id string
	}{
		{"push-float-time.json", "goliatone/hello-rabbit", "v0.3.1", Composite("goliatone/hello-rabbit", "v0.3.1", "1466026222")},
		{"push-official.json", "library/alpine", "3.20.0", Composite("library/alpine", "3.20.0", "1717430400")},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			n := Normalize(parse(t, "dockerhub", bareDelivery(fixture(t, "dockerhub/"+tc.fixture))))
			if len(n.Pushes) != 1 {
				t.Fatalf("got %+v", n)
			}
			if p := n.Pushes[0]; p.Repository != tc.repo || p.Tag != tc.tag || p.UpstreamID != tc.id || p.Registry != "docker.io" {
				t.Fatalf("got %+v", p)
			}
		})
	}
	t.Run("no pushed_at", func(t *testing.T) {
		body := patchJSON(t, fixture(t, "dockerhub/push.json"), func(m map[string]any) { delete(jsonAt(m, "push_data"), "pushed_at") })
		p := parse(t, "dockerhub", bareDelivery(body)).Pushes[0]
		if !p.PushedAt.IsZero() || p.UpstreamID != Composite("svendowideit/testhook", "latest", "") {
			t.Fatalf("got %+v", p)
		}
	})
}

// Docker Hub calls once per manifest of a multi-arch push, all for the same
// tag and second: one upstream id, so the repeats die as duplicates.
func TestDockerHubMultiArchRepeats(t *testing.T) {
	body := fixture(t, "dockerhub/push.json")
	a := parse(t, "dockerhub", bareDelivery(body))
	b := parse(t, "dockerhub", bareDelivery(body))
	wantEqual(t, a, b)
	later := patchJSON(t, body, func(m map[string]any) { jsonAt(m, "push_data")["pushed_at"] = 1417566200 })
	if c := parse(t, "dockerhub", bareDelivery(later)); c.Pushes[0].UpstreamID == a.Pushes[0].UpstreamID {
		t.Fatal("a later push of the same tag must get a new id")
	}
}

func TestDockerHubIgnored(t *testing.T) {
	// Docker Hub only notifies pushes; what it sends that is not a
	// release is a signature tag or a push without tag.
	wantEqual(t, normalized(t, "dockerhub", bareDelivery(fixture(t, "dockerhub/push-signature.json"))), Result{Ignored: 1})
	body := patchJSON(t, fixture(t, "dockerhub/push.json"), func(m map[string]any) { delete(jsonAt(m, "push_data"), "tag") })
	wantEqual(t, normalized(t, "dockerhub", bareDelivery(body)), Result{Ignored: 1})
}

func TestDockerHubMalformed(t *testing.T) {
	push := fixture(t, "dockerhub/push.json")
	edit := func(fn func(m map[string]any)) []byte { return patchJSON(t, push, fn) }
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("push!"), "body is not a JSON object"},
		{"no repository", edit(func(m map[string]any) { delete(m, "repository") }), "repository is missing"},
		{"no repo_name", edit(func(m map[string]any) { delete(jsonAt(m, "repository"), "repo_name") }), "repository.repo_name is missing"},
		{"repository not object", edit(func(m map[string]any) { m["repository"] = "svendowideit/testhook" }), "body is not the expected JSON"},
		{"legacy official name", edit(func(m map[string]any) { jsonAt(m, "repository")["repo_name"] = "_/nginx" }), `repository.repo_name "_/nginx" is not a valid repository name`},
		{"no push_data", edit(func(m map[string]any) { delete(m, "push_data") }), "push_data is missing"},
		{"bad tag", edit(func(m map[string]any) { jsonAt(m, "push_data")["tag"] = "-latest" }), `push_data.tag "-latest" is not a valid tag`},
		{"bad pushed_at", edit(func(m map[string]any) { jsonAt(m, "push_data")["pushed_at"] = 1e300 }), "push_data.pushed_at 1e+300 is not a Unix time"},
		{"pushed_at not a number", edit(func(m map[string]any) { jsonAt(m, "push_data")["pushed_at"] = "today" }), "body is not the expected JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantMalformed(t, "dockerhub", bareDelivery(tc.body), tc.want)
		})
	}
}

func FuzzDockerHub(f *testing.F) {
	seedFixtures(f, "dockerhub", `{"repository":{"repo_name":"a/b"},"push_data":{"pushed_at":"1e9"}}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "dockerhub", bareDelivery(body))
	})
}
