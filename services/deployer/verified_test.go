package deployer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/verify"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// summaryKeyFiles writes a new P-256 key pair as Slipway's summary key
// files.
func summaryKeyFiles(t *testing.T) config.SummaryKey {
	t.Helper()
	k, _ := testkit.GenerateKey(t)
	keyFile, pubFile := testkit.WriteKeyFiles(t, k)
	return config.SummaryKey{KeyFile: keyFile, PublicKeyFile: pubFile}
}

// summarize attaches a verification summary signed with key to the image
// ref (a digest reference), as a promotion that verified it does.
func summarize(t *testing.T, ref string, key config.SummaryKey) {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	k, err := verify.LoadSummaryKey(config.SummaryKey{KeyFile: key.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	img := verify.Image{Ref: d, Options: testkit.RemoteOptions(t)}
	if _, err := verify.Summarize(t.Context(), img, ref, []events.Verified{{Policy: "signed", Kind: "cosign", Identity: "sha256:ab"}}, k, "", time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestRequireVerifiedDeploysOnlyImagesWithSlipwaysSummary: on a cluster
// with deploy.requireVerified, an image without a verification summary,
// or with one signed by another key, is not deployed (Marathon untouched)
// and is announced once as deployment.refused saying why; an image with a
// summary signed by Slipway's key is deployed.
func TestRequireVerifiedDeploysOnlyImagesWithSlipwaysSummary(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	old := reg.Host + "/apps/web:1.0.0"
	testkit.PushRandomImage(t, old)
	c := newCluster(t, "prd-a", emulator.Options{}, appJSON("/prd/web", old, map[string]string{"slipway.policy": "all"}))
	e := newEnvWith(t, "deploy: { requireVerified: true }", c)
	e.cfg.Environments[0].Registry.Host = reg.Host
	key := summaryKeyFiles(t)
	e.cfg.Verification.Summary.PublicKeyFile = key.PublicKeyFile
	e.start(deployer.New())

	repo := reg.Host + "/apps/web"
	testkit.PushRandomImage(t, repo+":2.0.0")
	unverified := testkit.Digest(t, repo+":2.0.0")
	e.pushFrom(reg.Host, "push-unverified", "ci", "apps/web", "2.0.0", unverified)
	refused := e.rec.Wait(t, events.TypeDeploymentRefused, 1)
	e.pushFrom(reg.Host, "push-unverified-again", "ci", "apps/web", "2.0.0", unverified)
	e.drained()
	if c.puts("/prd/web") != 0 || c.image(t, "/prd/web") != old {
		t.Errorf("/prd/web runs %s after %d PUTs, want it untouched at %s", c.image(t, "/prd/web"), c.puts("/prd/web"), old)
	}
	if n := len(e.rec.Of(events.TypeDeploymentRefused)); n != 1 {
		t.Errorf("%d deployment.refused for one unverified image, want 1", n)
	}
	d, err := events.DataAs[events.DeploymentRefused](refused[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := "no verification summary signed by Slipway's key: no verification summary"; d.Reason != want || d.Digest != unverified || len(d.Workloads) != 1 {
		t.Errorf("deployment.refused %+v, want reason %q", d, want)
	}
	inv, err := inventory.Bind(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := inv.Get(t.Context(), "prd-a", "/prd/web")
	if err != nil || !ok || rec.Refused == nil || rec.Refused.Reason != d.Reason {
		t.Errorf("inventory of /prd/web: %+v %v %v, want the refusal with its reason", rec.Refused, ok, err)
	}

	// A summary signed with another key is refused as well.
	testkit.PushRandomImage(t, repo+":2.0.1")
	forged := testkit.Digest(t, repo+":2.0.1")
	summarize(t, repo+"@"+forged, summaryKeyFiles(t))
	e.pushFrom(reg.Host, "push-forged", "ci", "apps/web", "2.0.1", forged)
	all := e.rec.Wait(t, events.TypeDeploymentRefused, 2)
	if d, err := events.DataAs[events.DeploymentRefused](all[1]); err != nil || d.Digest != forged || !strings.Contains(d.Reason, "signed by another key") {
		t.Errorf("deployment.refused of the forged summary: %+v %v", d, err)
	}

	testkit.PushRandomImage(t, repo+":2.1.0")
	verified := testkit.Digest(t, repo+":2.1.0")
	summarize(t, repo+"@"+verified, key)
	e.pushFrom(reg.Host, "push-verified", "ci", "apps/web", "2.1.0", verified)
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()
	if got, want := c.image(t, "/prd/web"), repo+":2.1.0@"+verified; got != want {
		t.Errorf("/prd/web runs %s, want %s", got, want)
	}
	if n := len(e.rec.Of(events.TypeDeploymentRefused)); n != 2 {
		t.Errorf("%d deployment.refused, want the 2 before", n)
	}
}
