package formats

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// BenchmarkParse measures each parser on a tagged push as its registry
// sends it; the parse is on the hot path of every webhook.
//
//	go test -run='^$' -bench=Parse ./services/ingest/formats/
func BenchmarkParse(b *testing.B) {
	for _, c := range []struct {
		format, fixture string
		header          http.Header
	}{
		{"distribution", "distribution/push-manifest-tagged.json", nil},
		{"dockerhub", "dockerhub/push.json", nil},
		{"harbor", "harbor/push-artifact.json", nil},
		{"acr", "acr/push.json", nil},
		{"artifactory", "artifactory/docker_pushed.json", nil},
		{"ecr", "ecr/image_push.json", nil},
		{"gar", "gar/insert_tagged.json", nil},
		{"ghcr", "ghcr/package_published.json", http.Header{"X-Github-Event": {"package"}, "X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}}},
	} {
		b.Run(c.format, func(b *testing.B) {
			parse, err := Lookup(c.format)
			if err != nil {
				b.Fatal(err)
			}
			d := Delivery{Header: c.header, Body: fixture(b, c.fixture)}
			b.ReportAllocs()
			b.SetBytes(int64(len(d.Body)))
			for b.Loop() {
				r, err := parse(d)
				if err != nil || len(r.Pushes) != 1 {
					b.Fatalf("%d pushes, %v", len(r.Pushes), err)
				}
			}
		})
	}
}

// BenchmarkDistributionWebhook is what ingest does with a Distribution
// webhook before routing it: parse, then Normalize. The body is the compact
// envelope a registry sends (the fixture is indented for reading).
//
//	go test -run='^$' -bench=DistributionWebhook -benchmem ./services/ingest/formats/
func BenchmarkDistributionWebhook(b *testing.B) {
	var body bytes.Buffer
	if err := json.Compact(&body, fixture(b, "distribution/push-manifest-tagged.json")); err != nil {
		b.Fatal(err)
	}
	parse, err := Lookup("distribution")
	if err != nil {
		b.Fatal(err)
	}
	d := Delivery{Header: http.Header{"Content-Type": {"application/vnd.docker.distribution.events.v2+json"}}, Body: body.Bytes()}
	b.ReportAllocs()
	b.SetBytes(int64(body.Len()))
	for b.Loop() {
		r, err := parse(d)
		if err != nil {
			b.Fatal(err)
		}
		if n := Normalize(r); len(n.Pushes) != 1 {
			b.Fatalf("%d pushes after Normalize", len(n.Pushes))
		}
	}
}

// BenchmarkNormalize measures Normalize alone on a tagged push, the result
// of every accepted webhook.
func BenchmarkNormalize(b *testing.B) {
	r := Result{Pushes: []Push{{
		Registry:   "127.0.0.1:5001",
		Repository: "team/other",
		Tag:        "latest",
		Digest:     "sha256:e59473b06c0d05a9dfbaad8686588047cc07865743a78c9559bfd5ce15b60d0d",
		MediaType:  "application/vnd.docker.distribution.manifest.v2+json",
		Size:       423,
		Actor:      "ci-bot",
		UpstreamID: "01a20040-299d-756a-b354-c0f12c090bd7",
	}}}
	b.ReportAllocs()
	for b.Loop() {
		if n := Normalize(r); len(n.Pushes) != 1 {
			b.Fatalf("%d pushes after Normalize", len(n.Pushes))
		}
	}
}
