package formats

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

const (
	harborDigest   = "sha256:c1d64b2d4cb30f1be788cc4d246ddd9fc1fe85a3eb3a85a3de33829dfaf6ce7d"
	cdeventsDigest = "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"
)

// structured is how Harbor (and any CloudEvents SDK in structured mode) posts.
func structured(body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/cloudevents+json",
		"Authorization", "Bearer harbor-webhook-secret",
	), Body: body}
}

// binary is the CloudEvents HTTP binary mode: the CDEvents binding's
// example transport.
func binary(typ, id string, body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/json; charset=utf-8",
		"Ce-Specversion", "1.0",
		"Ce-Type", typ,
		"Ce-Id", id,
		"Ce-Source", "/tekton/pipelines/build-myapp",
		"Ce-Subject", "pkg%3Aoci%2Fmyapp",
		"Ce-Time", "2024-03-20T14:27:05.315384Z",
	), Body: body}
}

func harborEvent(t *testing.T, fn func(ev, resource map[string]any)) Delivery {
	return structured(patchJSON(t, fixture(t, "cloudevents/harbor_artifact_pushed.json"), func(m map[string]any) {
		fn(m, jsonAt(m, "data")["resources"].([]any)[0].(map[string]any))
	}))
}

func cdevent(t *testing.T, fn func(ev, subject map[string]any)) Delivery {
	return structured(patchJSON(t, fixture(t, "cloudevents/cdevents_artifact_published_0.4.json"), func(m map[string]any) {
		fn(m, jsonAt(m, "data", "subject"))
	}))
}

func TestCloudEventsHarborPush(t *testing.T) {
	got := singlePush(t, parse(t, "cloudevents", structured(fixture(t, "cloudevents/harbor_artifact_pushed.json"))))
	wantEqual(t, got, Push{
		Registry:   "harbor.example.com",
		Repository: "library/busybox",
		Tag:        "1.2.3",
		Digest:     harborDigest,
		Actor:      "robot$library+ci",
		UpstreamID: "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
		PushedAt:   mustTime(t, "2024-03-06T06:08:43Z"),
	})
}

// Harbor reports untagged children with the digest as tag.
func TestCloudEventsHarborMultiArch(t *testing.T) {
	child := func(c string) Delivery {
		return harborEvent(t, func(ev, r map[string]any) {
			d := "sha256:" + strings.Repeat(c, 64)
			ev["id"] = "child-" + c
			r["digest"], r["tag"], r["resource_url"] = d, d, "harbor.example.com/library/busybox@"+d
		})
	}
	wantOneRelease(t, "cloudevents", []Delivery{
		child("a"), child("b"),
		structured(fixture(t, "cloudevents/harbor_artifact_pushed.json")),
	}, "1.2.3", harborDigest)
}

func TestCloudEventsHarborSeveralResources(t *testing.T) {
	d := structured(patchJSON(t, fixture(t, "cloudevents/harbor_artifact_pushed.json"), func(m map[string]any) {
		data := jsonAt(m, "data")
		rs := data["resources"].([]any)
		second := map[string]any{"digest": harborDigest, "tag": "latest", "resource_url": "harbor.example.com/library/busybox:latest"}
		data["resources"] = append(rs, second)
	}))
	r := parse(t, "cloudevents", d)
	if len(r.Pushes) != 2 || r.Pushes[0].UpstreamID == r.Pushes[1].UpstreamID {
		t.Fatalf("several resources need distinct upstream ids: %+v", r)
	}
	if again := parse(t, "cloudevents", d); again.Pushes[1].UpstreamID != r.Pushes[1].UpstreamID {
		t.Fatal("upstream ids not stable")
	}
}

func TestCloudEventsZotPush(t *testing.T) {
	d := binary("zotregistry.image.updated", "0f4b8f4e", fixture(t, "zot/image_updated.json"))
	got := singlePush(t, parse(t, "cloudevents", d))
	if got.Repository != "team/app" || got.Tag != "1.2.3" || got.Digest != zotDigest || got.Registry != "" || got.UpstreamID != "0f4b8f4e" {
		t.Fatalf("zot: %+v", got)
	}
}

// CDEvents 0.4 (context.version, subject.type, artifact.published 0.2.0)
// in structured mode; the purl names the full repository.
func TestCloudEventsCDEvents04(t *testing.T) {
	got := singlePush(t, parse(t, "cloudevents", structured(fixture(t, "cloudevents/cdevents_artifact_published_0.4.json"))))
	wantEqual(t, got, Push{
		Registry:   "mycr.io",
		Repository: "team/myapp",
		Tag:        "v1.0.0",
		Digest:     cdeventsDigest,
		Actor:      "mybot-myapp",
		UpstreamID: "271069a8-fc18-44f1-b38f-9d70a1695819",
		PushedAt:   mustTime(t, "2023-03-20T14:27:05.315384Z"),
	})
}

// CDEvents 0.5 (context.specversion, artifact.published 0.3.0) in binary
// mode; repository_url is only the parent, percent-encoded.
func TestCloudEventsCDEvents05Binary(t *testing.T) {
	d := binary("dev.cdevents.artifact.published.0.3.0", "6f1d4c2a-3a3b-4f8e-9d0e-1b7c2e5a9f10", fixture(t, "cloudevents/cdevents_artifact_published_0.5_data.json"))
	got := singlePush(t, parse(t, "cloudevents", d))
	wantEqual(t, got, Push{
		Registry:   "ghcr.io",
		Repository: "acme/myapp",
		Tag:        "v2.0.0",
		Digest:     cdeventsDigest,
		Actor:      "tekton-bot",
		UpstreamID: "6f1d4c2a-3a3b-4f8e-9d0e-1b7c2e5a9f10",
		PushedAt:   mustTime(t, "2024-03-20T14:27:05.315384Z"),
	})
	// Without ce-time the CDEvent's own timestamp is the push time.
	d.Header.Del("Ce-Time")
	if p := singlePush(t, parse(t, "cloudevents", d)); !p.PushedAt.Equal(got.PushedAt) {
		t.Fatalf("timestamp fallback: %v", p.PushedAt)
	}
}

func TestCloudEventsPurlLocations(t *testing.T) {
	for purl, want := range map[string]Push{
		"pkg:oci/debian@sha256%3A" + cdeventsDigest[7:] + "?repository_url=docker.io/library/debian&arch=amd64&tag=latest": {Registry: "docker.io", Repository: "library/debian", Tag: "latest", Digest: cdeventsDigest},
		"pkg:oci/static@" + cdeventsDigest + "?repository_url=gcr.io%2Fdistroless&tag=nonroot":                             {Registry: "gcr.io", Repository: "distroless/static", Tag: "nonroot", Digest: cdeventsDigest},
		"pkg:oci/debian@sha256%3A" + cdeventsDigest[7:] + "?repository_url=https://ghcr.io/&tag=bullseye":                  {Registry: "ghcr.io", Repository: "debian", Tag: "bullseye", Digest: cdeventsDigest},
		"pkg:oci/hello-wasm@sha256%3A" + cdeventsDigest[7:] + "?tag=v1":                                                    {Repository: "hello-wasm", Tag: "v1", Digest: cdeventsDigest},
		"pkg:oci/registry.example.com:5000/apps/web@" + cdeventsDigest:                                                     {Registry: "registry.example.com:5000", Repository: "apps/web", Digest: cdeventsDigest},
		"PKG:OCI/app?tag=v3": {Repository: "app", Tag: "v3"},
	} {
		got := singlePush(t, parse(t, "cloudevents", cdevent(t, func(_, s map[string]any) { s["id"] = purl })))
		got.Actor, got.UpstreamID, got.PushedAt = "", "", want.PushedAt
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", purl, got, want)
		}
	}
}

// A CDEvents publish without a tag is an untagged push; Normalize drops it.
func TestCloudEventsCDEventsUntaggedAndSignature(t *testing.T) {
	wantNormalizeDrops(t, "cloudevents", cdevent(t, func(_, s map[string]any) {
		s["id"] = "pkg:oci/myapp@" + cdeventsDigest + "?repository_url=mycr.io/team/myapp"
	}))
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "cloudevents", cdevent(t, func(_, s map[string]any) {
			s["id"] = "pkg:oci/myapp@sha256%3A" + strings.Repeat("7", 64) + "?repository_url=mycr.io/team/myapp&tag=sha256-" + cdeventsDigest[7:] + suffix
		}))
	}
}

func TestCloudEventsSignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "cloudevents", harborEvent(t, func(_, r map[string]any) {
			tag := "sha256-" + harborDigest[7:] + suffix
			r["tag"], r["digest"] = tag, "sha256:"+strings.Repeat("3", 64)
			r["resource_url"] = "harbor.example.com/library/busybox:" + tag
		}))
	}
}

func TestCloudEventsIgnored(t *testing.T) {
	wantIgnored(t, "cloudevents", structured(fixture(t, "cloudevents/harbor_artifact_pulled.json")))
	for _, typ := range []string{"harbor.artifact.deleted", "harbor.scan.completed", "harbor.quota.exceeded", "harbor.replication.status.changed", "harbor.tag_retention.finished"} {
		wantIgnored(t, "cloudevents", harborEvent(t, func(ev, _ map[string]any) { ev["type"] = typ }))
	}
	for _, typ := range []string{"zotregistry.image.deleted", "zotregistry.repository.created", "zotregistry.image.scanned", "zotregistry.image.lint_failed"} {
		wantIgnored(t, "cloudevents", binary(typ, "z1", fixture(t, "zot/repository_created.json")))
	}
	wantIgnored(t, "cloudevents", structured(fixture(t, "cloudevents/cdevents_artifact_published_golang.json")))
	wantIgnored(t, "cloudevents", binary("dev.cdevents.pipelinerun.finished.0.2.0", "p1", []byte(`{"context":{},"subject":{}}`)))
	wantIgnored(t, "cloudevents", binary("dev.cdevents.artifact.signed.0.2.0", "s1", []byte(`{}`)))
}

// data_base64 carries the same data in structured mode.
func TestCloudEventsDataBase64(t *testing.T) {
	body := patchJSON(t, fixture(t, "cloudevents/harbor_artifact_pushed.json"), func(m map[string]any) {
		data, err := json.Marshal(m["data"])
		if err != nil {
			t.Fatal(err)
		}
		delete(m, "data")
		m["data_base64"] = base64.StdEncoding.EncodeToString(data)
	})
	got := singlePush(t, parse(t, "cloudevents", structured(body)))
	if got.Tag != "1.2.3" || got.Repository != "library/busybox" {
		t.Fatalf("data_base64: %+v", got)
	}
}

func TestCloudEventsMalformed(t *testing.T) {
	harbor := fixture(t, "cloudevents/harbor_artifact_pushed.json")
	patch := func(fn func(m map[string]any)) Delivery { return structured(patchJSON(t, harbor, fn)) }
	for name, tc := range map[string]struct {
		d    Delivery
		want string
	}{
		"plain json":     {Delivery{Header: header("Content-Type", "application/json"), Body: harbor}, "not a CloudEvent"},
		"not json":       {structured([]byte("specversion=1.0")), "structured CloudEvent is not a JSON object"},
		"bad json":       {structured([]byte(`{"specversion":"1.0",`)), "structured CloudEvent is not the expected JSON"},
		"unknown type":   {patch(func(m map[string]any) { m["type"] = "com.github.pull_request.opened" }), `event type "com.github.pull_request.opened" is not one Slipway maps`},
		"no specversion": {patch(func(m map[string]any) { delete(m, "specversion") }), "CloudEvent specversion is missing"},
		"id not string":  {patch(func(m map[string]any) { m["id"] = 42 }), "CloudEvent attribute id is not a string"},
		"no id":          {patch(func(m map[string]any) { delete(m, "id") }), "CloudEvent id is missing"},
		"no source":      {patch(func(m map[string]any) { m["source"] = "" }), "CloudEvent source is missing"},
		"bad time":       {patch(func(m map[string]any) { m["time"] = "1678082923" }), "is not a timestamp"},
		"yaml data":      {patch(func(m map[string]any) { m["datacontenttype"] = "application/yaml" }), "is not JSON"},
		"bad base64":     {patch(func(m map[string]any) { delete(m, "data"); m["data_base64"] = "%%%" }), "data_base64 is not base64"},
		"no data":        {patch(func(m map[string]any) { delete(m, "data") }), "data is missing"},
		"no resources":   {patch(func(m map[string]any) { jsonAt(m, "data")["resources"] = []any{} }), "data.resources is missing or empty"},
		"resource url":   {harborEvent(t, func(_, r map[string]any) { r["resource_url"] = "busybox:1.2.3" }), "does not start with a registry host"},
		"other repo":     {harborEvent(t, func(_, r map[string]any) { r["resource_url"] = "harbor.example.com/library/alpine:1.2.3" }), `is not in repository "library/busybox"`},
		"harbor digest":  {harborEvent(t, func(_, r map[string]any) { r["digest"] = "sha256:dde8e930" }), "data.resources[0].digest"},
		"cd no context":  {cdevent(t, func(ev, _ map[string]any) { delete(jsonAt(ev, "data"), "context") }), "data.context is missing"},
		"cd type differs": {cdevent(t, func(ev, _ map[string]any) {
			jsonAt(ev, "data", "context")["type"] = "dev.cdevents.artifact.published.0.3.0"
		}), "differs from the CloudEvent type"},
		"cd no subject id": {cdevent(t, func(_, s map[string]any) { delete(s, "id") }), "data.subject.id is missing"},
		"cd not purl":      {cdevent(t, func(_, s map[string]any) { s["id"] = "myapp:v1" }), `data.subject.id "myapp:v1" is not a package URL`},
		"cd bad escape":    {cdevent(t, func(_, s map[string]any) { s["id"] = "pkg:oci/myapp@sha256%3" }), "is not a package URL"},
		"cd bad host":      {cdevent(t, func(_, s map[string]any) { s["id"] = "pkg:oci/myapp?repository_url=-bad-/x" }), "does not start with a registry host"},
		"cd tag version":   {cdevent(t, func(_, s map[string]any) { s["id"] = "pkg:oci/myapp@v1.0.0" }), `data.subject.id version "v1.0.0" is not a valid digest`},
		"cd bad name":      {cdevent(t, func(_, s map[string]any) { s["id"] = "pkg:oci/MyApp@" + cdeventsDigest }), "is not a valid repository name"},
		"cd bad data":      {binary("dev.cdevents.artifact.published.0.3.0", "x", []byte(`[1]`)), "data is not a JSON object"},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "cloudevents", tc.d, tc.want) })
	}
}

func TestCloudEventsUpstreamIDStable(t *testing.T) {
	for _, d := range []Delivery{
		structured(fixture(t, "cloudevents/harbor_artifact_pushed.json")),
		structured(fixture(t, "cloudevents/cdevents_artifact_published_0.4.json")),
		binary("zotregistry.image.updated", "0f4b8f4e", fixture(t, "zot/image_updated.json")),
	} {
		a, b := parse(t, "cloudevents", d), parse(t, "cloudevents", d)
		if a.Pushes[0].UpstreamID == "" || a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
			t.Fatalf("ids %q %q", a.Pushes[0].UpstreamID, b.Pushes[0].UpstreamID)
		}
	}
}

func FuzzCloudEvents(f *testing.F) {
	seedFixtures(f, "cloudevents",
		// data-only bodies for binary mode
		`{"resources":[{"digest":"`+harborDigest+`","tag":"v1","resource_url":"h.io/a/b:v1"}],"repository":{"repo_full_name":"a/b"}}`,
		`{"context":{"type":"dev.cdevents.artifact.published.0.3.0"},"subject":{"id":"pkg:oci/b@`+cdeventsDigest+`?repository_url=h.io/a&tag=v1"}}`,
		`{"name":"a/b","reference":"v1","digest":"`+zotDigest+`"}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "cloudevents", structured(body))
		for _, typ := range []string{"harbor.artifact.pushed", "zotregistry.image.updated", "dev.cdevents.artifact.published.0.3.0"} {
			fuzzCheck(t, "cloudevents", binary(typ, "fuzz", body))
		}
	})
}
