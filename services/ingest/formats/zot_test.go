package formats

import (
	"strings"
	"testing"
)

const zotDigest = "sha256:c490e21154d6b8eb7edc6fdaca84627bcdba10f01a48f85b57132f43a9cb3e10"

// zotDelivery is what zot's HTTP sink (the CloudEvents SDK, binary mode)
// sends.
func zotDelivery(typ string, body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/json",
		"Ce-Specversion", "1.0",
		"Ce-Id", "0f4b8f4e-7a43-4d5e-9d0b-3f3c0c1d2e4a",
		"Ce-Source", "zotregistry.dev",
		"Ce-Type", typ,
		"Ce-Time", "2024-03-04T10:15:30.123456789Z",
		"Authorization", "Basic d2ViaG9vay11c2VyOndlYmhvb2stcGFzc3dvcmQ=",
	), Body: body}
}

func zotBody(t *testing.T, fn func(m map[string]any)) []byte {
	return patchJSON(t, fixture(t, "zot/image_updated.json"), fn)
}

func TestZotTaggedPush(t *testing.T) {
	body := fixture(t, "zot/image_updated.json")
	got := singlePush(t, parse(t, "zot", zotDelivery("zotregistry.image.updated", body)))
	wantEqual(t, got, Push{
		Repository: "team/app",
		Tag:        "1.2.3",
		Digest:     zotDigest,
		MediaType:  "application/vnd.oci.image.manifest.v1+json",
		Size:       406, // len(manifest); its sha256 is the digest
		Actor:      "ci-bot",
		UpstreamID: "0f4b8f4e-7a43-4d5e-9d0b-3f3c0c1d2e4a",
		PushedAt:   mustTime(t, "2024-03-04T10:15:30.123456789Z"),
	})
}

// events.typePrefix replaces "zotregistry" in newer zot releases.
func TestZotTypePrefix(t *testing.T) {
	got := singlePush(t, parse(t, "zot", zotDelivery("com.example.registry.image.updated", fixture(t, "zot/image_updated.json"))))
	if got.Repository != "team/app" || got.Tag != "1.2.3" {
		t.Fatalf("prefixed type: %+v", got)
	}
	wantIgnored(t, "zot", zotDelivery("com.example.registry.image.deleted", fixture(t, "zot/image_updated.json")))
}

// Structured mode is accepted too (a relay may re-encode).
func TestZotStructured(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"abc","source":"zotregistry.dev","type":"zotregistry.image.updated","datacontenttype":"application/json","data":` +
		string(fixture(t, "zot/image_updated.json")) + `}`)
	got := singlePush(t, parse(t, "zot", Delivery{Header: header("Content-Type", "application/cloudevents+json"), Body: body}))
	if got.UpstreamID != "abc" || got.Digest != zotDigest || !got.PushedAt.IsZero() {
		t.Fatalf("structured: %+v", got)
	}
}

// The children of a multi-arch push arrive with the digest as reference.
func TestZotMultiArch(t *testing.T) {
	child := func(c string) Delivery {
		d := "sha256:" + strings.Repeat(c, 64)
		return zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) {
			m["reference"], m["digest"] = d, d
		}))
	}
	// zot may leave digest empty; the reference still names the manifest.
	noDigest := zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) {
		m["reference"] = "sha256:" + strings.Repeat("c", 64)
		delete(m, "digest")
	}))
	if p := singlePush(t, parse(t, "zot", noDigest)); p.Digest != p.Tag {
		t.Fatalf("digest from reference: %+v", p)
	}
	index := zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) {
		m["mediaType"] = "application/vnd.oci.image.index.v1+json"
	}))
	wantOneRelease(t, "zot", []Delivery{child("a"), child("b"), noDigest, index}, "1.2.3", zotDigest)
}

func TestZotSignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "zot", zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) {
			m["reference"] = "sha256-" + zotDigest[7:] + suffix
			m["digest"] = "sha256:" + strings.Repeat("d", 64)
		})))
	}
}

func TestZotIgnored(t *testing.T) {
	for _, typ := range []string{"zotregistry.image.deleted", "zotregistry.image.lint_failed", "zotregistry.image.scanned"} {
		wantIgnored(t, "zot", zotDelivery(typ, fixture(t, "zot/image_updated.json")))
	}
	wantIgnored(t, "zot", zotDelivery("zotregistry.repository.created", fixture(t, "zot/repository_created.json")))
}

func TestZotMalformed(t *testing.T) {
	good := fixture(t, "zot/image_updated.json")
	without := func(h string) Delivery {
		d := zotDelivery("zotregistry.image.updated", good)
		d.Header.Del(h)
		return d
	}
	with := func(h, v string) Delivery {
		d := zotDelivery("zotregistry.image.updated", good)
		d.Header.Set(h, v)
		return d
	}
	for name, tc := range map[string]struct {
		d    Delivery
		want string
	}{
		"plain json":    {without("Ce-Specversion"), "not a CloudEvent"},
		"old spec":      {with("Ce-Specversion", "0.3"), `specversion "0.3" is not supported`},
		"no id":         {without("Ce-Id"), "CloudEvent id is missing"},
		"no source":     {without("Ce-Source"), "CloudEvent source is missing"},
		"no type":       {without("Ce-Type"), "CloudEvent type is missing"},
		"bad time":      {with("Ce-Time", "Mon, 04 Mar 2024 10:15:30 GMT"), "is not a timestamp"},
		"bad escape":    {with("Ce-Id", "%zz"), "ce-id is not percent-encoded correctly"},
		"xml data":      {with("Content-Type", "application/xml"), `data content type "application/xml" is not JSON`},
		"batch":         {with("Content-Type", "application/cloudevents-batch+json"), "batch mode is not supported"},
		"foreign type":  {zotDelivery("harbor.artifact.pushed", good), `event type "harbor.artifact.pushed" is not a zot event`},
		"bare suffix":   {zotDelivery(".image.updated", good), "is not a zot event"},
		"data not obj":  {zotDelivery("zotregistry.image.updated", []byte(`["team/app"]`)), "data is not a JSON object"},
		"data not json": {zotDelivery("zotregistry.image.updated", []byte(`{"name":`)), "data is not the expected JSON"},
		"no name":       {zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) { delete(m, "name") })), "data.name is missing"},
		"bad name":      {zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) { m["name"] = "Team/App" })), "is not a valid repository name"},
		"no reference":  {zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) { delete(m, "reference") })), "data.reference is missing"},
		"bad digest":    {zotDelivery("zotregistry.image.updated", zotBody(t, func(m map[string]any) { m["digest"] = "sha256:abc" })), `data.digest "sha256:abc" is not a valid digest`},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "zot", tc.d, tc.want) })
	}
}

func TestZotUpstreamIDStable(t *testing.T) {
	d := zotDelivery("zotregistry.image.updated", fixture(t, "zot/image_updated.json"))
	a, b := parse(t, "zot", d), parse(t, "zot", d)
	if a.Pushes[0].UpstreamID != "0f4b8f4e-7a43-4d5e-9d0b-3f3c0c1d2e4a" || a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
		t.Fatalf("ids %q %q", a.Pushes[0].UpstreamID, b.Pushes[0].UpstreamID)
	}
}

func FuzzZot(f *testing.F) {
	seedFixtures(f, "zot")
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "zot", zotDelivery("zotregistry.image.updated", body))
	})
}
