package formats

import (
	"strings"
	"testing"
)

const artifactorySHA = "35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce"

func artifactoryDelivery(body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/json",
		"X-JFrog-Event-Auth", "0ee4a4c1e9a3f6d1c1b0a3a8a7f1c3f0d6b2a9f4e5c7d8b1a2c3d4e5f6a7b8c9",
		"User-Agent", "JFrog Event/7.84.9",
	), Body: body}
}

func artifactoryData(t *testing.T, fn func(data map[string]any)) []byte {
	return patchJSON(t, fixture(t, "artifactory/docker_pushed.json"), func(m map[string]any) { fn(jsonAt(m, "data")) })
}

func TestArtifactoryTaggedPush(t *testing.T) {
	got := singlePush(t, parse(t, "artifactory", artifactoryDelivery(fixture(t, "artifactory/docker_pushed.json"))))
	wantEqual(t, got, Push{
		Repository:    "library/ubuntu",
		RepositoryKey: "docker-local",
		Tag:           "latest",
		Digest:        "sha256:" + artifactorySHA,
		Size:          1206,
		UpstreamID:    Composite("docker-local", "library/ubuntu", "latest", artifactorySHA),
	})
}

// Artifactory notifies once per pushed tag; should a manifest-list child
// (stored in a sha256__<hex> folder) be reported, it reads as untagged.
func TestArtifactoryMultiArch(t *testing.T) {
	child := func(hex string) Delivery {
		return artifactoryDelivery(artifactoryData(t, func(d map[string]any) {
			d["tag"] = "sha256__" + hex
			d["path"] = "library/ubuntu/sha256__" + hex + "/manifest.json"
			d["name"], d["sha256"], d["size"] = "manifest.json", hex, 529
		}))
	}
	amd, arm := strings.Repeat("1", 64), strings.Repeat("2", 64)
	if p := singlePush(t, parse(t, "artifactory", child(amd))); p.Tag != "sha256:"+amd {
		t.Fatalf("child tag = %q", p.Tag)
	}
	wantOneRelease(t, "artifactory", []Delivery{
		child(amd), child(arm),
		artifactoryDelivery(fixture(t, "artifactory/docker_pushed.json")),
	}, "latest", "sha256:"+artifactorySHA)
}

func TestArtifactorySignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "artifactory", artifactoryDelivery(artifactoryData(t, func(d map[string]any) {
			d["tag"] = "sha256-" + artifactorySHA + suffix
			d["sha256"] = strings.Repeat("f", 64)
		})))
	}
}

func TestArtifactoryIgnored(t *testing.T) {
	wantIgnored(t, "artifactory", artifactoryDelivery(fixture(t, "artifactory/docker_deleted.json")))
	wantIgnored(t, "artifactory", artifactoryDelivery(fixture(t, "artifactory/artifact_deployed.json")))
	promoted := patchJSON(t, fixture(t, "artifactory/docker_pushed.json"), func(m map[string]any) { m["event_type"] = "promoted" })
	wantIgnored(t, "artifactory", artifactoryDelivery(promoted))
}

func TestArtifactoryMalformed(t *testing.T) {
	good := fixture(t, "artifactory/docker_pushed.json")
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"not json":     {[]byte("domain=docker"), "body is not a JSON object"},
		"no domain":    {patchJSON(t, good, func(m map[string]any) { delete(m, "domain") }), "domain is missing"},
		"no type":      {patchJSON(t, good, func(m map[string]any) { delete(m, "event_type") }), "event_type is missing"},
		"no data":      {patchJSON(t, good, func(m map[string]any) { delete(m, "data") }), "data is missing"},
		"no repo key":  {artifactoryData(t, func(d map[string]any) { delete(d, "repo_key") }), "data.repo_key is missing"},
		"no sha":       {artifactoryData(t, func(d map[string]any) { delete(d, "sha256") }), "data.sha256 is missing"},
		"sample sha":   {artifactoryData(t, func(d map[string]any) { d["sha256"] = "sample_checksum" }), `data.sha256 "sample_checksum" is not a SHA-256 hex digest`},
		"prefixed sha": {artifactoryData(t, func(d map[string]any) { d["sha256"] = "sha256:" + artifactorySHA }), "is not a SHA-256 hex digest"},
		"no image":     {artifactoryData(t, func(d map[string]any) { delete(d, "image_name") }), "data.image_name is missing"},
		"bad image":    {artifactoryData(t, func(d map[string]any) { d["image_name"] = "Library/Ubuntu" }), "is not a valid repository name"},
		"bad tag":      {artifactoryData(t, func(d map[string]any) { d["tag"] = "la test" }), `data.tag "la test" is not a valid tag`},
		"neg size":     {artifactoryData(t, func(d map[string]any) { d["size"] = -5 }), "data.size is negative"},
		"size string":  {artifactoryData(t, func(d map[string]any) { d["size"] = "1206" }), "not the expected JSON"},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "artifactory", artifactoryDelivery(tc.body), tc.want) })
	}
}

func TestArtifactoryUpstreamIDStable(t *testing.T) {
	d := artifactoryDelivery(fixture(t, "artifactory/docker_pushed.json"))
	a, b := parse(t, "artifactory", d), parse(t, "artifactory", d)
	if a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
		t.Fatal("upstream id differs between identical deliveries")
	}
	// Uppercase hex is the same manifest and the same notification.
	upper := parse(t, "artifactory", artifactoryDelivery(artifactoryData(t, func(d map[string]any) { d["sha256"] = strings.ToUpper(artifactorySHA) })))
	if upper.Pushes[0].UpstreamID != a.Pushes[0].UpstreamID || upper.Pushes[0].Digest != a.Pushes[0].Digest {
		t.Fatalf("uppercase sha: %+v", upper.Pushes[0])
	}
	other := parse(t, "artifactory", artifactoryDelivery(artifactoryData(t, func(d map[string]any) { d["tag"] = "22.04" })))
	if other.Pushes[0].UpstreamID == a.Pushes[0].UpstreamID {
		t.Fatal("different tags share an upstream id")
	}
}

func FuzzArtifactory(f *testing.F) {
	seedFixtures(f, "artifactory", `{"domain":"docker","event_type":"pushed","data":{"repo_key":"r","sha256":"`+artifactorySHA+`","image_name":"a","tag":"sha256__`+artifactorySHA+`"}}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzCheck(t, "artifactory", artifactoryDelivery(body)) })
}
