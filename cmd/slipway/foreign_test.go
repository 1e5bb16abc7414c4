package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/promoter"
)

// TestForeignRegistryPushGoesNowhere is the attack from outside: an image
// pushed to a registry nobody configured, announced to the dev source by a
// Distribution notification that names that registry. Ingest answers 202
// (Distribution would retry anything else for ever) and stores nothing, so
// the image is neither copied to tst nor deployed there; a real push to dev
// afterwards goes all the way, so the foreign one had every chance to.
func TestForeignRegistryPushGoesNowhere(t *testing.T) {
	ns := testkit.NATS(t)
	marathon := startMarathon(t)
	addr := testkit.FreeAddr(t)
	dev := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: "http://" + addr + "/webhooks/dev-registry"})
	tst := testkit.NewRegistry(t, testkit.RegistryOptions{})
	foreign := testkit.NewRegistry(t, testkit.RegistryOptions{})
	marathon.load(t, fmt.Sprintf(`{"id":"/tst/web","instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/apps/web:1.0.0"}}}`, tst.Host))
	cfg := parseConfig(t, fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
ingest:
  listen: %q
  sources: [ { name: dev-registry, format: distribution, environment: dev, auth: { none: true } } ]
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }
clusters:
  - { name: int, environment: tst, marathon: { url: %q } }
deployer: { pollInterval: 100ms }
ops: { listen: "off" }
`, ns.URL, dev.Host, tst.Host, addr, marathon.url))
	js, got := recordStream(t, ns, cfg, "slipway.>")
	base := startIngest(t, cfg)
	runService(t, cfg, promoter.New(), deployer.New())
	for _, c := range []string{promoter.ConsumerName, deployer.ConsumerName("int")} {
		testkit.WaitFor(t, "consumer "+c, func() bool {
			_, err := js.Consumer(t.Context(), bus.DefaultStream, c)
			return err == nil
		})
	}

	// The foreign image, announced to dev's source as its registry would.
	testkit.PushRandomImage(t, foreign.Host+"/apps/web:6.6.6")
	evil := testkit.Digest(t, foreign.Host+"/apps/web:6.6.6")
	body, _ := json.Marshal(map[string]any{"events": []any{map[string]any{
		"id": "foreign-1", "timestamp": time.Now().UTC().Format(time.RFC3339Nano), "action": "push",
		"target":  map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": evil, "size": 500, "repository": "apps/web", "tag": "6.6.6"},
		"request": map[string]any{"id": "r1", "addr": "127.0.0.1:1", "host": foreign.Host, "method": "PUT", "useragent": "docker"},
		"actor":   map[string]any{"name": "mallory"},
	}}})
	resp, err := http.Post(base+"/webhooks/dev-registry", "application/vnd.docker.distribution.events.v2+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(answer), `"accepted":0`) || !strings.Contains(string(answer), `"ignored":1`) {
		t.Fatalf("foreign push: %d %s, want 202 with it ignored", resp.StatusCode, answer)
	}

	// A real push to dev: copied to tst and deployed there.
	testkit.PushRandomImage(t, dev.Host+"/apps/web:1.0.1")
	good := testkit.Digest(t, dev.Host+"/apps/web:1.0.1")
	got.Wait(t, events.TypeDeploymentSucceeded, 1)

	if img := marathon.image(t, "/tst/web"); img != tst.Host+"/apps/web:1.0.1@"+good {
		t.Errorf("/tst/web runs %s, want the dev push %s", img, good)
	}
	if _, err := testkit.TryDigest(tst.Host + "/apps/web:6.6.6"); err == nil {
		t.Error("tst holds the foreign registry's image")
	}
	for _, typ := range []events.Type{events.TypeImagePushed, events.TypeImagePromoted} {
		for _, e := range got.Wait(t, typ, 0) { // every one so far
			if strings.Contains(string(e.Data()), foreign.Host) || strings.Contains(string(e.Data()), evil) {
				t.Errorf("%s names the foreign image: %s", typ.Short(), e.Data())
			}
		}
	}
}
