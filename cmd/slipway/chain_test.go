package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// TestPromotionChain is the promotion story with three real registries,
// each notifying ingest: a push to dev is copied to tst by itself; tst's
// own webhook makes the tst → prd rule ask for approval; a release manager
// approves through the API; the image is copied to prd. The digest is the
// same in all three registries.
func TestPromotionChain(t *testing.T) {
	ns := testkit.NATS(t)
	// The registries need ingest's address, and ingest their hosts (it
	// refuses pushes of any other registry): take the address first.
	addr := testkit.FreeAddr(t)
	reg := map[string]*testkit.Registry{}
	for _, env := range []string{"dev", "tst", "prd"} {
		reg[env] = testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: "http://" + addr + "/webhooks/" + env + "-registry"})
	}
	cfg := parseConfig(t, fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"], tags: { semver: ">=0.0.0-0" } }
  - name: tst-to-prd
    from: tst
    to: prd
    repositories: ["apps/**"]
    tags: { semver: ">=1.0.0" }
    approval: { required: true, approvers: [release-manager], timeout: 1h }
ingest:
  listen: %q
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { none: true } }
    - { name: tst-registry, format: distribution, environment: tst, auth: { none: true } }
    - { name: prd-registry, format: distribution, environment: prd, auth: { none: true } }
approvers:
  - { name: release-manager, token: rm-t0ken }
  - { name: developer, token: dev-t0ken }
ops: { listen: "off" }
`, ns.URL, reg["dev"].Host, reg["tst"].Host, reg["prd"].Host, addr))
	js, got := recordStream(t, ns, cfg, "slipway.>")
	startIngest(t, cfg)
	runService(t, cfg, promoter.New())
	testkit.WaitFor(t, "the promoter's consumer", func() bool {
		_, err := js.Consumer(t.Context(), bus.DefaultStream, promoter.ConsumerName)
		return err == nil
	})

	testkit.PushRandomIndex(t, reg["dev"].Host+"/apps/web:1.4.0", 2)
	digest := testkit.Digest(t, reg["dev"].Host+"/apps/web:1.4.0")

	requested := got.Wait(t, events.TypeApprovalRequested, 1)
	ar, _ := events.DataAs[events.ApprovalRequested](requested[0])
	if d := testkit.Digest(t, reg["tst"].Host+"/apps/web:1.4.0"); d != digest {
		t.Fatalf("tst has %s, dev %s", d, digest)
	}
	if ar.From.Environment != "tst" || ar.To.Environment != "prd" || ar.To.Digest != digest {
		t.Errorf("approval.requested: %+v", ar)
	}

	base := "http://" + addr
	if code := decide(t, base, ar.ApprovalID, "approve", "dev-t0ken"); code != http.StatusForbidden {
		t.Errorf("a developer's approval: %d, want 403", code)
	}
	if code := decide(t, base, ar.ApprovalID, "approve", "rm-t0ken"); code != http.StatusOK {
		t.Fatalf("the release manager's approval: %d, want 200", code)
	}
	if code := decide(t, base, ar.ApprovalID, "approve", "rm-t0ken"); code != http.StatusConflict {
		t.Errorf("approving twice: %d, want 409", code)
	}

	promoted := got.Wait(t, events.TypeImagePromoted, 2)
	if d := testkit.Digest(t, reg["prd"].Host+"/apps/web:1.4.0"); d != digest {
		t.Fatalf("prd has %s, dev %s", d, digest)
	}
	for _, e := range promoted {
		p, _ := events.DataAs[events.ImagePromoted](e)
		if p.To.Digest != digest || p.BlobsCopied == 0 || p.BytesCopied == 0 {
			t.Errorf("image.promoted %s: %+v", p.Promotion, p)
		}
	}
	// prd's registry notified too: three pushes, one per stage.
	got.Wait(t, events.TypeImagePushed, 3)

	// The causation chain docs/events.md describes: image.promoted (into
	// prd) → approval.granted → approval.requested → image.pushed (in tst).
	byID := map[string]events.Event{}
	for _, typ := range []events.Type{events.TypeImagePushed, events.TypeApprovalRequested, events.TypeApprovalGranted, events.TypeImagePromoted} {
		for _, e := range got.Wait(t, typ, 0) {
			byID[e.ID()] = e
		}
	}
	var chain []string
	for _, e := range promoted {
		if p, _ := events.DataAs[events.ImagePromoted](e); p.To.Environment != "prd" {
			continue
		}
		for cur, ok := e, true; ok; cur, ok = byID[events.CausationOf(cur)] {
			chain = append(chain, events.Type(cur.Type()).Short()+" "+events.EnvironmentOf(cur))
		}
	}
	if want := []string{"image.promoted prd", "approval.granted prd", "approval.requested prd", "image.pushed tst"}; !slices.Equal(chain, want) {
		t.Errorf("causation chain %v, want %v", chain, want)
	}
}

// decide posts an approval decision and returns the status.
func decide(t *testing.T, base, id, verb, token string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"reason": "tested in tst"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/approvals/"+id+"/"+verb, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
