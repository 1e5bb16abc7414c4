package formats

import (
	"net/http"
	"testing"
)

// testdata/acr: push.json, delete.json and chart-*.json are the examples of
// Microsoft's "Azure Container Registry webhook reference" (whose digests
// are partly redacted with "xxxx"; real hex here). The multi-arch set,
// signature and quarantine events use the same shape.

func acrDelivery(t testing.TB, name string) Delivery {
	return Delivery{
		Header: http.Header{"Content-Type": {"application/json"}, "User-Agent": {"AzureContainerRegistry/1.0"}},
		Body:   fixture(t, "acr/"+name),
	}
}

func TestACRPush(t *testing.T) {
	r := parse(t, "acr", acrDelivery(t, "push.json"))
	wantEqual(t, r, Result{Pushes: []Push{{
		Registry:   "myregistry.azurecr.io",
		Repository: "hello-world",
		Tag:        "v1",
		Digest:     "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d",
		MediaType:  "application/vnd.docker.distribution.manifest.v2+json",
		Size:       524,
		UpstreamID: "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
		PushedAt:   mustTime(t, "2017-11-17T16:52:01.343145347Z"),
	}}})
	wantEqual(t, Normalize(r), r)
}

func TestACRMultiArch(t *testing.T) {
	n := normalized(t, "acr",
		acrDelivery(t, "push-child-amd64.json"),
		acrDelivery(t, "push-child-arm64.json"),
		acrDelivery(t, "push-index.json"))
	if len(n.Pushes) != 1 || n.Ignored != 2 || n.Pushes[0].Tag != "2.3.0" || n.Pushes[0].Registry != "contoso.azurecr.io" {
		t.Fatalf("want only the tagged index, got %+v", n)
	}
}

func TestACRIgnored(t *testing.T) {
	for _, f := range []string{"ping.json", "delete.json", "chart-push.json", "chart-delete.json", "quarantine.json"} {
		t.Run(f, func(t *testing.T) {
			wantEqual(t, parse(t, "acr", acrDelivery(t, f)), Result{Ignored: 1})
		})
	}
	t.Run("bare ping", func(t *testing.T) {
		wantEqual(t, parse(t, "acr", bareDelivery([]byte(`{"action":"ping"}`))), Result{Ignored: 1})
	})
	t.Run("signature", func(t *testing.T) {
		wantEqual(t, normalized(t, "acr", acrDelivery(t, "push-signature.json")), Result{Ignored: 1})
	})
}

func TestACRUpstreamID(t *testing.T) {
	wantEqual(t, parse(t, "acr", acrDelivery(t, "push.json")), parse(t, "acr", acrDelivery(t, "push.json")))
	body := patchJSON(t, fixture(t, "acr/push.json"), func(m map[string]any) { delete(m, "id") })
	p := parse(t, "acr", bareDelivery(body)).Pushes[0]
	want := Composite("myregistry.azurecr.io", "hello-world", "v1",
		"sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d", "push", "2017-11-17T16:52:01.343145347Z")
	if p.UpstreamID != want {
		t.Fatalf("upstream id %q, want %q", p.UpstreamID, want)
	}
}

func TestACRMalformed(t *testing.T) {
	push := fixture(t, "acr/push.json")
	edit := func(fn func(m map[string]any)) []byte { return patchJSON(t, push, fn) }
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("ok"), "body is not a JSON object"},
		{"distribution envelope", fixture(t, "distribution/push-index-tagged.json"), "action is missing"},
		{"no target", edit(func(m map[string]any) { delete(m, "target") }), "target is missing"},
		{"no repository", edit(func(m map[string]any) { delete(jsonAt(m, "target"), "repository") }), "target.repository is missing"},
		{"no digest", edit(func(m map[string]any) { jsonAt(m, "target")["digest"] = "" }), "target.digest is missing"},
		// The reference's own example digest is redacted: it is not one.
		{"redacted digest", edit(func(m map[string]any) {
			jsonAt(m, "target")["digest"] = "sha256:xxxxd5c8786bb9e621a45ece0dbxxxx1cdc624ad20da9fe62e9d25490f33xxxx"
		}), "target.digest \"sha256:xxxx"},
		{"bad host", edit(func(m map[string]any) { jsonAt(m, "request")["host"] = "myregistry.azurecr.io/evil" }), "request.host"},
		{"size as string", edit(func(m map[string]any) { jsonAt(m, "target")["size"] = "524" }), "body is not the expected JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantMalformed(t, "acr", bareDelivery(tc.body), tc.want)
		})
	}
}

func FuzzACR(f *testing.F) {
	seedFixtures(f, "acr", `{"action":"ping"}`, `{"action":"push","target":null}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "acr", bareDelivery(body))
	})
}
