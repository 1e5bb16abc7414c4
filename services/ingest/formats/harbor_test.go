package formats

import (
	"net/http"
	"testing"
	"time"
)

// testdata/harbor: push-artifact.json is the example of Harbor's webhook
// documentation; the ce-*.json files follow the CloudEvents formatter in
// Harbor's source (ce-artifact-pulled.json is its documented sample); the
// rest vary those with Harbor's payload model.

const harborCEType = "application/cloudevents+json"

func harborDelivery(t testing.TB, name, contentType string) Delivery {
	d := bareDelivery(fixture(t, "harbor/"+name))
	d.Header.Set("Content-Type", contentType)
	return d
}

func TestHarborDefaultPush(t *testing.T) {
	r := parse(t, "harbor", harborDelivery(t, "push-artifact.json", "application/json"))
	const digest = "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"
	wantEqual(t, r, Result{Pushes: []Push{{
		Registry:   "hub.harbor.com",
		Repository: "test-webhook/debian",
		Tag:        "latest",
		Digest:     digest,
		Actor:      "admin",
		UpstreamID: Composite("test-webhook/debian", "latest", digest, "1586922308"),
		PushedAt:   time.Unix(1586922308, 0).UTC(),
	}}})
	wantEqual(t, Normalize(r), r)
}

func TestHarborPushImageV1(t *testing.T) {
	p := parse(t, "harbor", harborDelivery(t, "push-image-v1.json", "application/json")).Pushes
	if len(p) != 1 || p[0].Registry != "harbor.example.com:8443" || p[0].Tag != "v2" || p[0].Repository != "test-webhook/debian" {
		t.Fatalf("got %+v", p)
	}
}

func TestHarborCloudEventsPush(t *testing.T) {
	want := Result{Pushes: []Push{{
		Registry:   "harbor.dev",
		Repository: "library/busybox",
		Tag:        "1.36.0",
		Digest:     "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
		Actor:      "admin",
		UpstreamID: "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
		PushedAt:   mustTime(t, "2023-03-06T06:08:43Z"),
	}}}
	for _, ct := range []string{harborCEType, harborCEType + "; charset=utf-8", "application/json", ""} {
		t.Run("Content-Type "+ct, func(t *testing.T) {
			// Proxies drop or rewrite the content type; the body still
			// says it is a CloudEvent.
			wantEqual(t, parse(t, "harbor", harborDelivery(t, "ce-artifact-pushed.json", ct)), want)
		})
	}
}

func TestHarborMultiArch(t *testing.T) {
	for _, ct := range []string{"application/json", harborCEType} {
		t.Run(ct, func(t *testing.T) {
			ds := []Delivery{
				harborDelivery(t, "push-child-amd64.json", "application/json"),
				harborDelivery(t, "push-child-arm64.json", "application/json"),
				harborDelivery(t, "push-index.json", "application/json"),
			}
			if ct == harborCEType {
				for i := range ds {
					ds[i] = harborAsCloudEvent(t, ds[i].Body)
				}
			}
			n := normalized(t, "harbor", ds...)
			if len(n.Pushes) != 1 || n.Ignored != 2 || n.Pushes[0].Tag != "2.3.0" || n.Pushes[0].Registry != "harbor.example.com" {
				t.Fatalf("want only the tagged index, got %+v", n)
			}
		})
	}
}

// harborAsCloudEvent re-sends a default-format payload as Harbor's
// CloudEvents formatter would.
func harborAsCloudEvent(t testing.TB, body []byte) Delivery {
	var ce []byte
	patchJSON(t, body, func(h map[string]any) {
		ce = jsonBody(t, map[string]any{
			"specversion": "1.0", "id": "id-" + h["type"].(string), "source": "/projects/2/webhook/policies/7",
			"type": "harbor.artifact.pushed", "datacontenttype": "application/json",
			"time": time.Unix(int64(h["occur_at"].(float64)), 0).UTC().Format(time.RFC3339),
			"data": h["event_data"], "operator": h["operator"], "requestid": "r",
		})
	})
	return Delivery{Header: http.Header{"Content-Type": {harborCEType}}, Body: ce}
}

func TestHarborIgnored(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, contentType string
	}{
		{"pull", "pull-artifact.json", "application/json"},
		{"delete", "delete-artifact.json", "application/json"},
		{"scan", "scanning-completed.json", "application/json"},
		{"cloudevents pull", "ce-artifact-pulled.json", harborCEType},
		{"cloudevents delete", "ce-artifact-deleted.json", harborCEType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantEqual(t, parse(t, "harbor", harborDelivery(t, tc.fixture, tc.contentType)), Result{Ignored: 1})
		})
	}
	t.Run("test endpoint", func(t *testing.T) {
		// Harbor's "Test Endpoint" button posts no body at all.
		d := Delivery{Header: http.Header{"Content-Type": {"application/json"}}}
		wantEqual(t, parse(t, "harbor", d), Result{Ignored: 1})
	})
	t.Run("other types", func(t *testing.T) {
		for _, typ := range []string{"QUOTA_EXCEED", "REPLICATION", "TAG_RETENTION", "pullImage", "deleteImage", "testEndpoint"} {
			body := jsonBody(t, map[string]any{"type": typ, "occur_at": 1586922308, "operator": "admin"})
			wantEqual(t, parse(t, "harbor", bareDelivery(body)), Result{Ignored: 1})
		}
	})
	t.Run("signature", func(t *testing.T) {
		n := normalized(t, "harbor", harborDelivery(t, "push-signature.json", "application/json"))
		wantEqual(t, n, Result{Ignored: 1})
	})
}

func TestHarborUpstreamID(t *testing.T) {
	t.Run("stable", func(t *testing.T) {
		for _, f := range []string{"push-artifact.json", "ce-artifact-pushed.json"} {
			a := parse(t, "harbor", harborDelivery(t, f, ""))
			b := parse(t, "harbor", harborDelivery(t, f, ""))
			wantEqual(t, a, b)
		}
	})
	t.Run("several resources", func(t *testing.T) {
		for f, url := range map[string]string{
			"push-artifact.json":      "hub.harbor.com/test-webhook/debian:1.36",
			"ce-artifact-pushed.json": "harbor.dev/library/busybox:1.36",
		} {
			body := patchJSON(t, fixture(t, "harbor/"+f), func(m map[string]any) {
				data, ok := m["data"].(map[string]any)
				if !ok {
					data = jsonAt(m, "event_data")
				}
				data["resources"] = append(data["resources"].([]any), map[string]any{
					"digest":       "sha256:1f5e7a3c9b2d4e6f8a0b1c3d5e7f9a2b4c6d8e0f1a3b5c7d9e2f4a6b8c0d1e3f",
					"tag":          "1.36",
					"resource_url": url,
				})
			})
			r := parse(t, "harbor", bareDelivery(body))
			if len(r.Pushes) != 2 || r.Pushes[0].UpstreamID == r.Pushes[1].UpstreamID {
				t.Fatalf("%s: want two pushes with distinct ids, got %+v", f, r)
			}
		}
	})
}

func TestHarborMalformed(t *testing.T) {
	push := fixture(t, "harbor/push-artifact.json")
	ce := fixture(t, "harbor/ce-artifact-pushed.json")
	editPush := func(fn func(m map[string]any)) Delivery { return bareDelivery(patchJSON(t, push, fn)) }
	editCE := func(fn func(m map[string]any)) Delivery {
		return Delivery{Header: http.Header{"Content-Type": {harborCEType}}, Body: patchJSON(t, ce, fn)}
	}
	for _, tc := range []struct {
		name string
		d    Delivery
		want string
	}{
		{"not JSON", bareDelivery([]byte("<html>")), "body is not a JSON object"},
		{"no type", editPush(func(m map[string]any) { delete(m, "type") }), "type is missing"},
		{"type not string", editPush(func(m map[string]any) { m["type"] = 1 }), "body is not the expected JSON"},
		{"no event_data", editPush(func(m map[string]any) { delete(m, "event_data") }), "event_data is missing"},
		{"event_data not object", editPush(func(m map[string]any) { m["event_data"] = []any{} }), "event_data is not a JSON object"},
		{"no repository", editPush(func(m map[string]any) { delete(jsonAt(m, "event_data"), "repository") }), "event_data.repository is missing"},
		{"no repo_full_name", editPush(func(m map[string]any) { delete(jsonAt(m, "event_data", "repository"), "repo_full_name") }),
			"event_data.repository.repo_full_name is missing"},
		{"no resources", editPush(func(m map[string]any) { jsonAt(m, "event_data")["resources"] = []any{} }), "event_data.resources is missing or empty"},
		{"bad digest", editPush(func(m map[string]any) { jsonAt(m, "event_data", "resources", 0)["digest"] = "sha256:xxxx" }),
			`event_data.resources[0].digest "sha256:xxxx" is not a valid digest`},
		{"resource_url without host", editPush(func(m map[string]any) { jsonAt(m, "event_data", "resources", 0)["resource_url"] = "debian:latest" }),
			`event_data.resources[0].resource_url "debian:latest" does not start with a registry host`},
		{"resource_url of another repository", editPush(func(m map[string]any) {
			jsonAt(m, "event_data", "resources", 0)["resource_url"] = "hub.harbor.com/other/debian:latest"
		}), `is not in repository "test-webhook/debian"`},
		{"bad occur_at", editPush(func(m map[string]any) { m["occur_at"] = -1 }), "occur_at -1 is not a Unix time"},
		{"cloudevents: not Harbor", editCE(func(m map[string]any) { m["type"] = "com.example.thing.happened" }),
			`CloudEvent type "com.example.thing.happened" is not a Harbor event`},
		{"cloudevents: no id", editCE(func(m map[string]any) { delete(m, "id") }), "CloudEvent id is missing"},
		{"cloudevents: no data", editCE(func(m map[string]any) { delete(m, "data") }), "data is missing"},
		{"cloudevents: no resources", editCE(func(m map[string]any) { delete(jsonAt(m, "data"), "resources") }), "data.resources is missing or empty"},
		{"cloudevents: time after year 9999", editCE(func(m map[string]any) { m["time"] = "9999-12-31T23:59:59-00:01" }), "is outside the years 0 to 9999"},
		{"cloudevents: bad time", editCE(func(m map[string]any) { m["time"] = "06/03/2023" }), "is not a timestamp"},
		{"cloudevents: sniffed without Content-Type", bareDelivery(patchJSON(t, ce, func(m map[string]any) { m["specversion"] = "0.3" })),
			`specversion "0.3" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantMalformed(t, "harbor", tc.d, tc.want)
		})
	}
}

func FuzzHarbor(f *testing.F) {
	seedFixtures(f, "harbor", "", `{"type":"PUSH_ARTIFACT","event_data":{"repository":{},"resources":[null]}}`, `{"specversion":null}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "harbor", bareDelivery(body))
		fuzzCheck(t, "harbor", Delivery{Header: http.Header{"Content-Type": {harborCEType}}, Body: body})
	})
}
