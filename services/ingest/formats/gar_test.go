package formats

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

const (
	garDigest = "sha256:b974ebb9a97901339d70cbd59a98baeb15228d9f39e326d41014aa938512c4e9"
	garImage  = "europe-west1-docker.pkg.dev/acme-dev/apps/team/app"
)

func garDelivery(body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/json",
		"Authorization", "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjFiYjc3NGJkIn0.eyJhdWQiOiJzbGlwd2F5In0.c2ln",
		"User-Agent", "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
	), Body: body}
}

// garMessage wraps notification data in the envelope of the tagged fixture.
func garMessage(t *testing.T, data any) Delivery {
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return garEnvelopeData(t, base64.StdEncoding.EncodeToString(raw))
}

func garEnvelopeData(t *testing.T, data any) Delivery {
	return garDelivery(patchJSON(t, fixture(t, "gar/insert_tagged.json"), func(m map[string]any) {
		jsonAt(m, "message")["data"] = data
	}))
}

func TestGARTaggedPush(t *testing.T) {
	got := singlePush(t, parse(t, "gar", garDelivery(fixture(t, "gar/insert_tagged.json"))))
	wantEqual(t, got, Push{
		Registry:   "europe-west1-docker.pkg.dev",
		Repository: "acme-dev/apps/team/app",
		Tag:        "1.2.3",
		Digest:     garDigest,
		UpstreamID: "2070443601311540",
		PushedAt:   mustTime(t, "2024-03-04T10:15:31.749Z"),
	})
}

func TestGARContainerRegistry(t *testing.T) {
	got := singlePush(t, parse(t, "gar", garDelivery(fixture(t, "gar/gcr_insert.json"))))
	if got.Registry != "gcr.io" || got.Repository != "acme-dev/hello-world" || got.Tag != "latest" || got.Digest != garDigest {
		t.Fatalf("gcr: %+v", got)
	}
}

func TestGARMultiArch(t *testing.T) {
	child := garMessage(t, map[string]string{"action": "INSERT", "digest": garImage + "@sha256:" + strings.Repeat("e", 64)})
	got := singlePush(t, parse(t, "gar", garDelivery(fixture(t, "gar/insert_digest.json"))))
	if got.Tag != "" || got.Repository != "acme-dev/apps/team/app" || got.UpstreamID != "2070443601311541" {
		t.Fatalf("untagged: %+v", got)
	}
	wantOneRelease(t, "gar", []Delivery{
		garDelivery(fixture(t, "gar/insert_digest.json")),
		child,
		garDelivery(fixture(t, "gar/insert_tagged.json")),
	}, "1.2.3", garDigest)
}

func TestGARSignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "gar", garMessage(t, map[string]string{
			"action": "INSERT",
			"digest": garImage + "@sha256:" + strings.Repeat("5", 64),
			"tag":    garImage + ":sha256-" + garDigest[7:] + suffix,
		}))
	}
}

func TestGARIgnored(t *testing.T) {
	wantIgnored(t, "gar", garDelivery(fixture(t, "gar/delete.json")))
	wantIgnored(t, "gar", garMessage(t, map[string]string{"action": "DELETE", "digest": garImage + "@" + garDigest}))
}

func TestGARMalformed(t *testing.T) {
	good := fixture(t, "gar/insert_tagged.json")
	for name, tc := range map[string]struct {
		d    Delivery
		want string
	}{
		"not json":   {garDelivery([]byte("message=1")), "body is not a JSON object"},
		"no message": {garDelivery([]byte(`{"subscription":"projects/p/subscriptions/s"}`)), "message is missing"},
		"no id": {garDelivery(patchJSON(t, good, func(m map[string]any) {
			delete(jsonAt(m, "message"), "messageId")
			delete(jsonAt(m, "message"), "message_id")
		})), "message.messageId is missing"},
		"no data":        {garDelivery(patchJSON(t, good, func(m map[string]any) { delete(jsonAt(m, "message"), "data") })), "message.data is missing"},
		"data not str":   {garEnvelopeData(t, map[string]any{"action": "INSERT"}), "message.data is missing"},
		"not base64":     {garEnvelopeData(t, "{not base64!}"), "message.data is not base64"},
		"data not json":  {garEnvelopeData(t, base64.StdEncoding.EncodeToString([]byte("INSERT"))), "message.data is not a JSON object"},
		"no action":      {garMessage(t, map[string]string{"digest": garImage + "@" + garDigest}), "message.data.action is missing"},
		"nothing":        {garMessage(t, map[string]string{"action": "INSERT"}), "has neither digest nor tag"},
		"digest no host": {garMessage(t, map[string]string{"action": "INSERT", "digest": "app@" + garDigest}), "is not a host/repository@digest reference"},
		"digest w/o @":   {garMessage(t, map[string]string{"action": "INSERT", "digest": garImage + ":1.2.3"}), "is not a host/repository@digest reference"},
		"tag w/o tag":    {garMessage(t, map[string]string{"action": "INSERT", "tag": garImage}), "is not a host/repository:tag reference"},
		"mismatch":       {garMessage(t, map[string]string{"action": "INSERT", "digest": garImage + "@" + garDigest, "tag": garImage + "-other:1"}), "name different images"},
		"short digest":   {garMessage(t, map[string]string{"action": "INSERT", "digest": garImage + "@sha256:6ec128e26cd5"}), "is not a valid digest"},
		"bad repo":       {garMessage(t, map[string]string{"action": "INSERT", "tag": "gcr.io/Acme/App:1"}), "is not a valid repository name"},
		"bad time":       {garDelivery(patchJSON(t, good, func(m map[string]any) { jsonAt(m, "message")["publishTime"] = "now" })), `message.publishTime "now" is not a timestamp`},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "gar", tc.d, tc.want) })
	}
}

func TestGARUpstreamIDStable(t *testing.T) {
	d := garDelivery(fixture(t, "gar/insert_tagged.json"))
	a, b := parse(t, "gar", d), parse(t, "gar", d)
	if a.Pushes[0].UpstreamID != "2070443601311540" || a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
		t.Fatalf("ids %q %q", a.Pushes[0].UpstreamID, b.Pushes[0].UpstreamID)
	}
	// The snake_case duplicates alone are enough.
	snake := garDelivery(patchJSON(t, fixture(t, "gar/insert_tagged.json"), func(m map[string]any) {
		delete(jsonAt(m, "message"), "messageId")
		delete(jsonAt(m, "message"), "publishTime")
	}))
	s := singlePush(t, parse(t, "gar", snake))
	if s.UpstreamID != "2070443601311540" || !s.PushedAt.Equal(a.Pushes[0].PushedAt) {
		t.Fatalf("snake_case envelope: %+v", s)
	}
}

func FuzzGAR(f *testing.F) {
	seedFixtures(f, "gar")
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "gar", garDelivery(body))
		// Also fuzz the decoded notification inside a valid envelope.
		env := `{"message":{"messageId":"1","data":"` + base64.StdEncoding.EncodeToString(body) + `"}}`
		fuzzCheck(t, "gar", garDelivery([]byte(env)))
	})
}
