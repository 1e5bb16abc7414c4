package formats

import (
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
