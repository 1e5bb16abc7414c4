package formats

import (
	"strings"
	"testing"
)

func nexusDelivery(webhookID string, body []byte) Delivery {
	return Delivery{Header: header(
		"Content-Type", "application/json; charset=UTF-8",
		"User-Agent", "Nexus/3.68.1-02 (PRO; Linux; 5.15.0; amd64; 17.0.10)",
		"X-Nexus-Webhook-Id", webhookID,
		"X-Nexus-Webhook-Delivery", "7f4a6dde-5c68-4999-bcc0-a62f3fb8ae48",
		"X-Nexus-Webhook-Signature", "687f3719b87232cf1c11b3ef7ea10c49218b6df1",
	), Body: body}
}

func nexusComponent(t *testing.T, fn func(m, c map[string]any)) Delivery {
	return nexusDelivery("rm:repository:component", patchJSON(t, fixture(t, "nexus/component_created.json"), func(m map[string]any) {
		fn(m, jsonAt(m, "component"))
	}))
}

func TestNexusTaggedPush(t *testing.T) {
	got := singlePush(t, parse(t, "nexus", nexusDelivery("rm:repository:component", fixture(t, "nexus/component_created.json"))))
	wantEqual(t, got, Push{
		Repository: "team/app",
		Tag:        "1.2.3",
		Actor:      "ci-bot",
		UpstreamID: "7f4a6dde-5c68-4999-bcc0-a62f3fb8ae48",
		PushedAt:   mustTime(t, "2024-03-04T10:15:30.123Z"),
	})
}

func TestNexusUpdatedIsPush(t *testing.T) {
	got := singlePush(t, parse(t, "nexus", nexusComponent(t, func(m, c map[string]any) {
		m["action"] = "UPDATED"
		c["name"] = "/team/app" // older releases keep the leading slash
	})))
	if got.Repository != "team/app" || got.Tag != "1.2.3" {
		t.Fatalf("updated: %+v", got)
	}
}

// A multi-arch push creates components for the children (version = their
// digest) and one for the tag.
func TestNexusMultiArch(t *testing.T) {
	child := func(c string) Delivery {
		return nexusComponent(t, func(_, comp map[string]any) { comp["version"] = "sha256:" + strings.Repeat(c, 64) })
	}
	wantOneRelease(t, "nexus", []Delivery{
		child("a"), child("b"),
		nexusDelivery("rm:repository:component", fixture(t, "nexus/component_created.json")),
	}, "1.2.3", "")
}

func TestNexusSignatureTags(t *testing.T) {
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		wantNormalizeDrops(t, "nexus", nexusComponent(t, func(_, c map[string]any) {
			c["version"] = "sha256-" + strings.Repeat("c", 64) + suffix
		}))
	}
}

func TestNexusIgnored(t *testing.T) {
	wantIgnored(t, "nexus", nexusDelivery("rm:repository:asset", fixture(t, "nexus/asset_created_npm.json")))
	wantIgnored(t, "nexus", nexusDelivery("rm:global:audit", []byte(`{"nodeId":"n","initiator":"admin/127.0.0.1","audit":{"domain":"security.user","type":"created"}}`)))
	wantIgnored(t, "nexus", nexusComponent(t, func(m, _ map[string]any) { m["action"] = "DELETED" }))
	wantIgnored(t, "nexus", nexusDelivery("rm:repository:component", []byte(`{"timestamp":"2024-03-04T10:15:30.123+0000","nodeId":"n","initiator":"system","repositoryName":"docker-hosted","action":"PURGED"}`)))
	wantIgnored(t, "nexus", nexusComponent(t, func(_, c map[string]any) { c["format"], c["name"], c["group"] = "maven2", "guava", "com.google.guava" }))
}

func TestNexusMalformed(t *testing.T) {
	noID := nexusDelivery("", fixture(t, "nexus/component_created.json"))
	wantMalformed(t, "nexus", noID, "X-Nexus-Webhook-Id header is missing")
	for name, tc := range map[string]struct {
		d    Delivery
		want string
	}{
		"not json":     {nexusDelivery("rm:repository:component", []byte("{")), "body is not the expected JSON"},
		"not object":   {nexusDelivery("rm:repository:component", []byte(`"CREATED"`)), "body is not a JSON object"},
		"no action":    {nexusComponent(t, func(m, _ map[string]any) { delete(m, "action") }), "action is missing"},
		"no component": {nexusComponent(t, func(m, _ map[string]any) { delete(m, "component") }), "component is missing"},
		"no format":    {nexusComponent(t, func(_, c map[string]any) { delete(c, "format") }), "component.format is missing"},
		"no name":      {nexusComponent(t, func(_, c map[string]any) { delete(c, "name") }), "component.name is missing"},
		"bad name":     {nexusComponent(t, func(_, c map[string]any) { c["name"] = "team/App" }), `component.name "team/App" is not a valid repository name`},
		"no version":   {nexusComponent(t, func(_, c map[string]any) { delete(c, "version") }), "component.version is missing"},
		"bad version":  {nexusComponent(t, func(_, c map[string]any) { c["version"] = "1.2.3 final" }), "is not a valid tag"},
		"bad time":     {nexusComponent(t, func(m, _ map[string]any) { m["timestamp"] = "10/11/2016" }), `timestamp "10/11/2016" is not a timestamp`},
	} {
		t.Run(name, func(t *testing.T) { wantMalformed(t, "nexus", tc.d, tc.want) })
	}
}

func TestNexusUpstreamIDStable(t *testing.T) {
	d := nexusDelivery("rm:repository:component", fixture(t, "nexus/component_created.json"))
	if a, b := parse(t, "nexus", d), parse(t, "nexus", d); a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID {
		t.Fatal("upstream id differs between identical deliveries")
	}
	d.Header.Del("X-Nexus-Webhook-Delivery")
	a, b := parse(t, "nexus", d), parse(t, "nexus", d)
	other := nexusComponent(t, func(m, _ map[string]any) { m["timestamp"] = "2024-03-04T10:20:00.000+0000" })
	other.Header.Del("X-Nexus-Webhook-Delivery")
	o := parse(t, "nexus", other)
	if a.Pushes[0].UpstreamID == "" || a.Pushes[0].UpstreamID != b.Pushes[0].UpstreamID || a.Pushes[0].UpstreamID == o.Pushes[0].UpstreamID {
		t.Fatalf("composite ids: %q %q %q", a.Pushes[0].UpstreamID, b.Pushes[0].UpstreamID, o.Pushes[0].UpstreamID)
	}
}

func FuzzNexus(f *testing.F) {
	seedFixtures(f, "nexus", `{"action":"UPDATED","component":{"format":"docker","name":"/a","version":"sha256-`+strings.Repeat("0", 64)+`.sig"}}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, "nexus", nexusDelivery("rm:repository:component", body))
	})
}
