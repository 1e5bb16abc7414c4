package main

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
)

// TestLeafNodeSiteCatchesUpAfterTheLinkIsCut runs the production deployer
// on premises, connected only to a leaf nats-server that dials out to the
// cloud hub holding the stream; ingest runs in the cloud against the hub.
// Pushes for prd reach the deployer over the leaf connection and its
// deployment events come back into the hub's stream. Then the link is cut
// (the on-premises server goes down) while the hub keeps accepting pushes,
// and healed: every prd app is updated exactly once, and each deployment's
// events are in the hub's stream exactly once.
func TestLeafNodeSiteCatchesUpAfterTheLinkIsCut(t *testing.T) {
	const (
		pushes   = 20
		cutAfter = 5 // pushes deployed before the link is cut; the rest arrive while it is
	)
	// Clients log in with an NKey here (the cluster test uses a password),
	// on the leaf and on the hub alike.
	creds, seedFile := testkit.NKeyUser(t)
	site := testkit.NATSHubAndLeaf(t, testkit.LeafOptions{Credentials: creds})
	marathon, puts := startCountingMarathon(t)
	marathon.load(t, optedInApps("prd", pushes)...)

	// One configuration but for where each process connects: the cloud
	// side to the hub, the on-premises deployer to its leaf.
	configFor := func(natsURL string) string {
		return fmt.Sprintf(`
nats: { url: %q, nkeyFile: %q }
environments: [ { name: prd, registry: { host: %q } } ]
ingest:
  listen: "127.0.0.1:0"
  sources: [ { name: prd-registry, format: distribution, environment: prd, auth: { none: true } } ]
clusters: [ { name: vsphere-prd, environment: prd, marathon: { url: %q } } ]
deployer: { pollInterval: 100ms }
ops: { listen: "off" }
`, natsURL, seedFile, clusterRegistry, marathon.url)
	}
	cloud, onPrem := parseConfig(t, configFor(site.Hub.URL)), parseConfig(t, configFor(site.Leaf.URL))

	_, hub := site.ConnectHub(t)
	if _, err := bus.EnsureStream(t.Context(), hub, cloud.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	// Checked after the services stopped, as in the cluster test.
	t.Cleanup(func() { puts.assertOnce(t, pushes) })
	webhook := startIngest(t, cloud) + "/webhooks/prd-registry"
	runService(t, onPrem, deployer.New())
	waitConsumer(t, hub, deployer.ConsumerName("vsphere-prd"))

	reg := &registrySender{url: webhook, refused: map[string]int{}}
	push := func(from, to int) {
		for i := from; i < to; i++ {
			if err := reg.send(t.Context(), fmt.Sprintf("apps/app-%d", i), "1.1.0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	push(0, cutAfter)
	testkit.WaitFor(t, "deployments over the leaf connection", func() bool { return puts.apps() == cutAfter })
	// Cut when the site has nothing in hand: an event it held at the cut
	// would come back only after the consumer's ack wait, which proves
	// nothing more here and would make the test slow.
	waitConsumerIdle(t, hub, deployer.ConsumerName("vsphere-prd"))
	site.CutLink()
	push(cutAfter, pushes)
	if n := puts.apps(); n != cutAfter {
		t.Fatalf("%d apps updated while the site was cut off, want the %d of before", n, cutAfter)
	}
	site.HealLink(t)

	testkit.WaitFor(t, "every prd app updated", func() bool { return puts.apps() == pushes })
	for _, typ := range []string{"started", "succeeded"} {
		subject := "slipway.deployment." + typ + ".prd"
		testkit.WaitFor(t, "deployment."+typ+" of every app in the hub's stream", func() bool {
			return len(storedEvents(t, hub, subject)) >= pushes
		})
		assertDeployedOnce(t, storedEvents(t, hub, subject), pushes)
	}
	assertPushedOnce(t, storedEvents(t, hub, "slipway.image.pushed.>"), reg.acceptedIDs())
}

// waitConsumerIdle waits until the durable consumer has nothing pending and
// nothing unacknowledged.
func waitConsumerIdle(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	testkit.WaitFor(t, "consumer "+name+" idle", func() bool {
		cons, err := js.Consumer(t.Context(), bus.DefaultStream, name)
		if err != nil {
			return false
		}
		info := cons.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	})
}
