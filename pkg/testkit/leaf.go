package testkit

import (
	"cmp"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HubDomain is the hub's JetStream domain. nats-server never lets the plain
// JetStream API ($JS.API.>, $KV.>) cross a leaf-node connection, so the
// leaf maps its account's JetStream API onto the hub's domain
// (default_js_domain): its clients use JetStream as if it were local.
const HubDomain = "hub"

// LeafOptions shape NATSHubAndLeaf.
type LeafOptions struct {
	// Credentials of the user in Account that clients log in with, on the
	// hub and on the leaf alike; user "slipway" with a random password
	// when empty.
	Credentials Credentials
}

// HubAndLeaf is a cloud hub and an on-premises leaf: the hub runs
// JetStream for Account and accepts leaf-node connections; the leaf runs
// no JetStream and dials OUT to the hub (it needs no inbound port), binding
// its Account to the hub's, so the JetStream API, the streams and the KV
// buckets of the hub serve the leaf's clients over that one connection.
// Both are shut down in t.Cleanup.
type HubAndLeaf struct {
	Hub, Leaf   *NATSServer
	Credentials Credentials

	mu       sync.Mutex
	leafPort int // the hub's leaf-node port
}

// NATSHubAndLeaf starts the hub, then the leaf, and returns once the leaf
// is linked.
func NATSHubAndLeaf(t testing.TB, opts LeafOptions) *HubAndLeaf {
	t.Helper()
	h := &HubAndLeaf{Credentials: withDefaults(opts.Credentials)}
	// The link logs in as its own user, as a site's leaf would with the
	// credentials it was issued.
	linkUser, linkPassword := "leaf", randomSecret()
	hubConf := accountsBlock(t, h.Credentials, true, fmt.Sprintf("{ user: %q, password: %q }", linkUser, linkPassword))
	var hubOpts *server.Options
	hub := &NATSServer{StoreDir: t.TempDir()}
	hub.configure = func() (*server.Options, error) {
		o, err := configured(hubConf)
		if err != nil {
			return nil, err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		o.ServerName, o.JetStream, o.StoreDir, o.JetStreamDomain = "hub", true, hub.StoreDir, HubDomain
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", cmp.Or(h.leafPort, server.RANDOM_PORT)
		hubOpts = o
		return o, nil
	}
	h.Hub = startNATS(t, hub)
	h.mu.Lock()
	// The server writes the port it picked back into its options.
	h.leafPort = hubOpts.LeafNode.Port
	h.mu.Unlock()

	leafConf := accountsBlock(t, h.Credentials, false) + fmt.Sprintf(
		"default_js_domain: { %s: %s }\nleafnodes { reconnect: \"100ms\", remotes: [ { url: \"nats-leaf://%s:%s@127.0.0.1:%d\", account: %s } ] }\n",
		Account, HubDomain, linkUser, linkPassword, h.leafPort, Account)
	h.Leaf = startNATS(t, &NATSServer{noJetStream: true, configure: func() (*server.Options, error) {
		o, err := configured(leafConf)
		if err != nil {
			return nil, err
		}
		o.ServerName = "leaf"
		return o, nil
	}})
	h.WaitLinked(t)
	return h
}

// WaitLinked waits until the leaf's connection to the hub is up on both
// ends.
func (h *HubAndLeaf) WaitLinked(t testing.TB) {
	t.Helper()
	WaitFor(t, "leaf-node connection between leaf and hub", func() bool {
		hub, leaf := h.Hub.Server(), h.Leaf.Server()
		return hub != nil && leaf != nil && hub.Running() && leaf.Running() &&
			hub.NumLeafNodes() > 0 && leaf.NumLeafNodes() > 0
	})
}

// CutLink takes the on-premises side off the hub by shutting the leaf
// down: its clients lose their server, the hub keeps working.
func (h *HubAndLeaf) CutLink() { h.Leaf.Shutdown() }

// HealLink starts the leaf again on its client port and waits until it is
// linked to the hub.
func (h *HubAndLeaf) HealLink(t testing.TB) {
	t.Helper()
	h.Leaf.Restart(t)
	h.WaitLinked(t)
}

// ConnectHub and ConnectLeaf open a client connection as the user, to the
// hub or to the leaf (see NATSServer.Connect).
func (h *HubAndLeaf) ConnectHub(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return h.Hub.Connect(t, append(h.Credentials.options(t), opts...)...)
}

// ConnectLeaf: see ConnectHub.
func (h *HubAndLeaf) ConnectLeaf(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return h.Leaf.Connect(t, append(h.Credentials.options(t), opts...)...)
}
