package formats

import (
	"strings"
	"testing"
)

const ecrDigest = "sha256:02915c173f5b5238c520514331165c9c1e1d2a5a6d088b612fd675a5f265a853"

func ecrDelivery(body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/json; charset=utf-8",
		"User-Agent", "Amazon/EventBridge/ApiDestinations",
		"X-Api-Key", "9c0f1e53c1c24d6f",
	), Body: body}
}

func ecrPatch(t *testing.T, fn func(ev, detail map[string]any)) Delivery {
	return ecrDelivery(patchJSON(t, fixture(t, "ecr/image_push.json"), func(m map[string]any) { fn(m, jsonAt(m, "detail")) }))
}

func TestECRTaggedPush(t *testing.T) {
	got := singlePush(t, parse(t, "ecr", ecrDelivery(fixture(t, "ecr/image_push.json"))))
	wantEqual(t, got, Push{
		Registry:   "123456789012.dkr.ecr.us-west-2.amazonaws.com",
		Repository: "team/app",
		Tag:        "1.2.3",
		Digest:     ecrDigest,
		MediaType:  "application/vnd.oci.image.index.v1+json",
		UpstreamID: "13cde686-328b-6117-af20-0e5566167482",
		PushedAt:   mustTime(t, "2019-11-16T01:54:34Z"),
	})
}

func TestECRRegionHosts(t *testing.T) {
	for region, host := range map[string]string{
		"cn-north-1":    "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
		"us-gov-west-1": "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
		"eu-central-2":  "123456789012.dkr.ecr.eu-central-2.amazonaws.com",
	} {
		got := singlePush(t, parse(t, "ecr", ecrPatch(t, func(ev, _ map[string]any) { ev["region"] = region })))
		if got.Registry != host {
			t.Errorf("%s: registry %q, want %q", region, got.Registry, host)
		}
	}
}

// ECR sends one event per manifest; children of an index have no tag
// (image-tag empty or absent).
func TestECRMultiArch(t *testing.T) {
	child := func(c string, drop bool) Delivery {
		return ecrPatch(t, func(ev, det map[string]any) {
			ev["id"] = "child-" + c
			det["image-digest"] = "sha256:" + strings.Repeat(c, 64)
			det["manifest-media-type"] = "application/vnd.oci.image.manifest.v1+json"
			if drop {
				delete(det, "image-tag")
			} else {
				det["image-tag"] = ""
			}
		})
	}
	wantOneRelease(t, "ecr", []Delivery{
		child("a", false), child("b", true),
		ecrDelivery(fixture(t, "ecr/image_push.json")),
	}, "1.2.3", ecrDigest)
}

func TestECRSignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "ecr", ecrPatch(t, func(_, det map[string]any) {
			det["image-tag"] = "sha256-" + ecrDigest[7:] + suffix
			det["image-digest"] = "sha256:" + strings.Repeat("9", 64)
			det["manifest-media-type"] = "application/vnd.oci.image.manifest.v1+json"
		}))
	}
}

func TestECRIgnored(t *testing.T) {
	wantIgnored(t, "ecr", ecrDelivery(fixture(t, "ecr/image_delete.json")))
	wantIgnored(t, "ecr", ecrDelivery(fixture(t, "ecr/image_scan.json")))
	wantIgnored(t, "ecr", ecrPatch(t, func(_, det map[string]any) { det["result"] = "FAILURE" }))
	wantIgnored(t, "ecr", ecrDelivery([]byte(`{"version":"0","id":"85fc3613","detail-type":"ECR Pull Through Cache Action","source":"aws.ecr","account":"123456789012","time":"2023-02-28T02:36:48Z","region":"us-west-2","detail":{"sync-status":"SUCCESS"}}`)))
}

func TestECRMalformed(t *testing.T) {
	for name, tc := range map[string]struct {
		d    Delivery
		want string
	}{
		"not json":     {ecrDelivery([]byte("")), "body is not a JSON object"},
		"no source":    {ecrPatch(t, func(ev, _ map[string]any) { delete(ev, "source") }), "source is missing"},
		"other source": {ecrPatch(t, func(ev, _ map[string]any) { ev["source"] = "aws.s3" }), `source "aws.s3" is not aws.ecr`},
		"no id":        {ecrPatch(t, func(ev, _ map[string]any) { delete(ev, "id") }), "id is missing"},
		"no type":      {ecrPatch(t, func(ev, _ map[string]any) { delete(ev, "detail-type") }), "detail-type is missing"},
		"no detail":    {ecrPatch(t, func(ev, _ map[string]any) { delete(ev, "detail") }), "detail is missing"},
		"no action":    {ecrPatch(t, func(_, det map[string]any) { delete(det, "action-type") }), "detail.action-type is missing"},
		"bad account":  {ecrPatch(t, func(ev, _ map[string]any) { ev["account"] = "12345" }), `account "12345" is not a 12-digit AWS account id`},
		"bad region":   {ecrPatch(t, func(ev, _ map[string]any) { ev["region"] = "evil.com/x" }), "is not an AWS region"},
		"no repo":      {ecrPatch(t, func(_, det map[string]any) { delete(det, "repository-name") }), "detail.repository-name is missing"},
		"bad repo":     {ecrPatch(t, func(_, det map[string]any) { det["repository-name"] = "../etc" }), "is not a valid repository name"},
		"no digest":    {ecrPatch(t, func(_, det map[string]any) { delete(det, "image-digest") }), "detail.image-digest is missing"},
		// AWS's own sample event carries a 60-digit digest.
		"doc digest": {ecrPatch(t, func(_, det map[string]any) {
			det["image-digest"] = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234"
		}), "is not a valid digest"},
		"bad tag":  {ecrPatch(t, func(_, det map[string]any) { det["image-tag"] = "v1:2" }), "is not a valid tag"},
		"bad time": {ecrPatch(t, func(ev, _ map[string]any) { ev["time"] = "1573869274" }), `time "1573869274" is not a timestamp`},
		"year -1":  {ecrPatch(t, func(ev, _ map[string]any) { ev["time"] = "0000-01-01T00:00:00+01:00" }), "outside the years 0 to 9999"},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "ecr", tc.d, tc.want) })
	}
}

func TestECRUpstreamIDStable(t *testing.T) {
	d := ecrDelivery(fixture(t, "ecr/image_push.json"))
	a, b := parse(t, "ecr", d), parse(t, "ecr", d)
	if a.Pushes[0].UpstreamID != "13cde686-328b-6117-af20-0e5566167482" || a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
		t.Fatalf("ids %q %q", a.Pushes[0].UpstreamID, b.Pushes[0].UpstreamID)
	}
}

func FuzzECR(f *testing.F) {
	seedFixtures(f, "ecr")
	f.Fuzz(func(t *testing.T, body []byte) { fuzzCheck(t, "ecr", ecrDelivery(body)) })
}
