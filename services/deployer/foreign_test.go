package deployer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// The deployer deploys only images of its environment's registry. A push
// that names another registry (published to the stream by something other
// than ingest) is not deployed, not even to an app that already runs an
// image of that registry and opted in to every update.
func TestForeignRegistryImageIsNeverDeployed(t *testing.T) {
	const foreign = "evil.example:5000"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}),
		appJSON("/dev/stray", foreign+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.start(deployer.New())

	data := events.ImagePushed{Environment: "dev", Registry: foreign, Repository: "apps/web", Tag: "6.6.6", Digest: digest("evil"),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Source: "dev-registry", Format: "distribution", PushedAt: time.Now()}
	ev, err := events.New(t.Context(), events.Spec{ID: events.ID("image.pushed", data.Ref().String()), Type: events.TypeImagePushed,
		Source: "/slipway/ingest/dev-registry", Environment: "dev", Subject: data.Ref().String(), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(e.js, "").Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	// A push of dev's own registry after it: once it is deployed, the
	// foreign one has been dealt with.
	dig := digest("1.0.1")
	e.push("apps/web", "1.0.1", dig, time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	e.drained()

	if got, want := c.image(t, "/dev/web"), registry+"/apps/web:1.0.1@"+dig; got != want {
		t.Errorf("/dev/web runs %s, want %s", got, want)
	}
	if n := c.puts("/dev/stray"); n != 0 {
		t.Errorf("/dev/stray (an image of a foreign registry) got %d PUTs, want none", n)
	}
	for _, ev := range e.rec.All() {
		if strings.Contains(string(ev.Data()), foreign) {
			t.Errorf("%s mentions the foreign registry: %s", ev.Type(), ev.Data())
		}
	}
}
