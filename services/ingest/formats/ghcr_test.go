package formats

import (
	"testing"
)

const (
	ghcrIndex = "sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"
	ghcrAMD64 = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
	ghcrARM64 = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"
)

func ghcrDelivery(event string, body []byte) Delivery {
	return Delivery{Header: header(
		"X-GitHub-Event", event,
		"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-Hub-Signature-256", "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c",
		"Content-Type", "application/json",
	), Body: body}
}

// ghcrVersion patches the published fixture's package_version.
func ghcrVersion(t *testing.T, fn func(v map[string]any)) []byte {
	return patchJSON(t, fixture(t, "ghcr/package_published.json"), func(m map[string]any) {
		fn(jsonAt(m, "package", "package_version"))
	})
}

// ghcrImage rewrites the published fixture into another manifest of the
// same package.
func ghcrImage(t *testing.T, tag, digest, mediaType string) []byte {
	return ghcrVersion(t, func(v map[string]any) {
		v["version"], v["name"] = digest, digest
		v["package_url"] = "ghcr.io/octo-org/hello-world:" + tag
		cm := jsonAt(v, "container_metadata")
		cm["tag"] = map[string]any{"name": tag, "digest": digest}
		man := jsonAt(cm, "manifest")
		man["digest"], man["media_type"] = digest, mediaType
	})
}

func TestGHCRTaggedPush(t *testing.T) {
	got := singlePush(t, parse(t, "ghcr", ghcrDelivery("package", fixture(t, "ghcr/package_published.json"))))
	wantEqual(t, got, Push{
		Registry:   "ghcr.io",
		Repository: "octo-org/hello-world",
		Tag:        "v1.2.3",
		Digest:     ghcrIndex,
		MediaType:  "application/vnd.oci.image.index.v1+json",
		Size:       1609,
		Actor:      "Codertocat",
		UpstreamID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		PushedAt:   mustTime(t, "2024-05-10T08:12:41Z"),
	})
	if n := Normalize(Result{Pushes: []Push{got}}); len(n.Pushes) != 1 {
		t.Fatalf("Normalize dropped the tagged push: %+v", n)
	}
}

// GitHub's own registry_package example: the older event name and object,
// the owner's login in capitals in package_url, an untagged child ("…:")
// and the zero time.
func TestGHCRRegistryPackageChild(t *testing.T) {
	d := ghcrDelivery("registry_package", fixture(t, "ghcr/registry_package_published.json"))
	got := singlePush(t, parse(t, "ghcr", d))
	wantEqual(t, got, Push{
		Registry:   "ghcr.io",
		Repository: "codertocat/hello-world",
		Digest:     ghcrAMD64,
		MediaType:  "application/vnd.docker.distribution.manifest.v2+json",
		Size:       1782,
		Actor:      "Codertocat",
		UpstreamID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
	})
	wantNormalizeDrops(t, "ghcr", d)
}

func TestGHCRMultiArch(t *testing.T) {
	const manifest = "application/vnd.oci.image.manifest.v1+json"
	wantOneRelease(t, "ghcr", []Delivery{
		ghcrDelivery("package", ghcrImage(t, "", ghcrAMD64, manifest)),
		ghcrDelivery("package", ghcrImage(t, "", ghcrARM64, manifest)),
		ghcrDelivery("package", fixture(t, "ghcr/package_published.json")),
	}, "v1.2.3", ghcrIndex)
}

func TestGHCRSignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom", ""} {
		tag := "sha256-" + ghcrIndex[len("sha256:"):] + suffix
		wantNormalizeDrops(t, "ghcr", ghcrDelivery("package",
			ghcrImage(t, tag, ghcrAMD64, "application/vnd.oci.image.manifest.v1+json")))
	}
}

func TestGHCRUpdatedUsesUpdateTime(t *testing.T) {
	body := patchJSON(t, fixture(t, "ghcr/package_published.json"), func(m map[string]any) { m["action"] = "updated" })
	got := singlePush(t, parse(t, "ghcr", ghcrDelivery("package", body)))
	if want := mustTime(t, "2024-05-10T08:12:44Z"); !got.PushedAt.Equal(want) || got.Tag != "v1.2.3" {
		t.Fatalf("updated: got %+v", got)
	}
}

// Without package_url the image is owner/name on ghcr.io, and the digest
// comes from the version name.
func TestGHCRFallbacks(t *testing.T) {
	body := ghcrVersion(t, func(v map[string]any) {
		delete(v, "package_url")
		delete(v, "container_metadata")
	})
	got := singlePush(t, parse(t, "ghcr", ghcrDelivery("package", body)))
	if got.Registry != "ghcr.io" || got.Repository != "octo-org/hello-world" || got.Digest != ghcrIndex || got.Tag != "" {
		t.Fatalf("fallbacks: got %+v", got)
	}
}

func TestGHCRIgnored(t *testing.T) {
	wantIgnored(t, "ghcr", ghcrDelivery("ping", fixture(t, "ghcr/ping.json")))
	wantIgnored(t, "ghcr", ghcrDelivery("push", []byte(`{"ref":"refs/heads/main"}`)))
	npm := patchJSON(t, fixture(t, "ghcr/package_published.json"), func(m map[string]any) {
		p := jsonAt(m, "package")
		p["package_type"], p["ecosystem"] = "npm", "npm"
		delete(p, "package_version")
	})
	wantIgnored(t, "ghcr", ghcrDelivery("package", npm))
	deleted := patchJSON(t, fixture(t, "ghcr/package_published.json"), func(m map[string]any) { m["action"] = "deleted" })
	wantIgnored(t, "ghcr", ghcrDelivery("package", deleted))
}

func TestGHCRMalformed(t *testing.T) {
	good := fixture(t, "ghcr/package_published.json")
	noHeader := ghcrDelivery("package", good)
	noHeader.Header.Del("X-GitHub-Event")
	wantMalformed(t, "ghcr", noHeader, "X-GitHub-Event header is missing")
	for name, tc := range map[string]struct {
		event string
		body  []byte
		want  string
	}{
		"not json":        {"package", []byte("<html>"), "body is not a JSON object"},
		"array":           {"package", []byte(`[{"action":"published"}]`), "body is not a JSON object"},
		"wrong object":    {"registry_package", good, "registry_package is missing"},
		"no package":      {"package", []byte(`{"action":"published"}`), "package is missing"},
		"package not obj": {"package", []byte(`{"action":"published","package":"x"}`), "package is missing"},
		"no action":       {"package", patchJSON(t, good, func(m map[string]any) { delete(m, "action") }), "action is missing"},
		"no version":      {"package", patchJSON(t, good, func(m map[string]any) { delete(jsonAt(m, "package"), "package_version") }), "package.package_version is missing"},
		"bad url":         {"package", ghcrVersion(t, func(v map[string]any) { v["package_url"] = "hello-world:v1" }), "package_url \"hello-world:v1\" is not an image reference"},
		"bad repo":        {"package", ghcrVersion(t, func(v map[string]any) { v["package_url"] = "ghcr.io/octo org/x:v1" }), "is not a valid repository name"},
		"bad tag":         {"package", ghcrVersion(t, func(v map[string]any) { jsonAt(v, "container_metadata", "tag")["name"] = "-v1" }), "container_metadata.tag.name \"-v1\" is not a valid tag"},
		"short digest": {"package", ghcrVersion(t, func(v map[string]any) {
			jsonAt(v, "container_metadata", "manifest")["digest"] = "sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"
		}), "is not a valid digest"},
		"digest type":   {"package", ghcrVersion(t, func(v map[string]any) { jsonAt(v, "container_metadata", "manifest")["digest"] = 7 }), "not the expected JSON"},
		"negative size": {"package", ghcrVersion(t, func(v map[string]any) { jsonAt(v, "container_metadata", "manifest")["size"] = -1 }), "size is negative"},
		"bad time":      {"package", ghcrVersion(t, func(v map[string]any) { v["created_at"] = "last tuesday" }), "created_at \"last tuesday\" is not a timestamp"},
		"no repo, no owner": {"package", patchJSON(t, good, func(m map[string]any) {
			delete(jsonAt(m, "package", "package_version"), "package_url")
			delete(jsonAt(m, "package"), "owner")
		}), "package_url is missing"},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "ghcr", ghcrDelivery(tc.event, tc.body), tc.want) })
	}
}

func TestGHCRUpstreamIDStable(t *testing.T) {
	d := ghcrDelivery("package", fixture(t, "ghcr/package_published.json"))
	a, b := parse(t, "ghcr", d), parse(t, "ghcr", d)
	if a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
		t.Fatal("upstream id differs between identical deliveries")
	}
	// Without X-GitHub-Delivery the id is derived from the payload.
	d.Header.Del("X-GitHub-Delivery")
	c, e := parse(t, "ghcr", d), parse(t, "ghcr", d)
	other := ghcrDelivery("package", ghcrImage(t, "v9", ghcrIndex, "application/vnd.oci.image.index.v1+json"))
	other.Header.Del("X-GitHub-Delivery")
	o := parse(t, "ghcr", other)
	if c.Pushes[0].UpstreamID == "" || c.Pushes[0].UpstreamID != e.Pushes[0].UpstreamID || c.Pushes[0].UpstreamID == o.Pushes[0].UpstreamID {
		t.Fatalf("composite ids: %q %q %q", c.Pushes[0].UpstreamID, e.Pushes[0].UpstreamID, o.Pushes[0].UpstreamID)
	}
}

func FuzzGHCR(f *testing.F) {
	seedFixtures(f, "ghcr", `{"action":"published","package":{"package_type":"CONTAINER","package_version":{"package_url":"ghcr.io/a/b:"}}}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "ghcr", ghcrDelivery("package", body))
		fuzzCheck(t, "ghcr", ghcrDelivery("registry_package", body))
	})
}
