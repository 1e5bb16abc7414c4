package testkit

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Account is the NATS account Slipway's clients use on the clustered and
// leaf-node servers: JetStream is enabled for it alone, as an operator
// would set it up (the system account stays the server's own).
const Account = "SLIPWAY"

// Credentials are the user Slipway connects as, in Account.
type Credentials struct {
	// User and Password: the user/password login (the default).
	User, Password string
	// NKeySeed, when set, replaces the password: the server knows the
	// user by its public key and the client signs the server's nonce.
	NKeySeed string
}

// NKeyUser makes a fresh NKey user and returns its credentials and a file
// holding its seed, as nats.nkeyFile takes it.
func NKeyUser(t testing.TB) (Credentials, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("testkit: nkey: %v", err)
	}
	seed, _ := kp.Seed()
	file := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return Credentials{NKeySeed: string(seed)}, file
}

// ClusterOptions shape NATSCluster.
type ClusterOptions struct {
	// Name of the cluster; "slipway" when empty.
	Name string
	// Credentials of the user in Account; user "slipway" with a random
	// password when empty.
	Credentials Credentials
}

// JetStreamCluster is three embedded nats-servers, n1..n3, forming one
// JetStream cluster on 127.0.0.1. Every node keeps its client port, route
// port and store directory across Kill and Restart, so a restarted node
// rejoins as the same peer with its data.
type JetStreamCluster struct {
	// Nodes are the servers; Nodes[i] is named n<i+1>.
	Nodes       [3]*NATSServer
	Credentials Credentials

	name     string
	accounts string // the accounts block of every node's configuration

	mu         sync.Mutex
	routePorts [3]int // 0 until the node first listened
}

// NATSCluster starts a three-node JetStream cluster with an account
// Account for the configured user, and returns once it has a meta leader.
// Every node is shut down in t.Cleanup.
func NATSCluster(t testing.TB, opts ClusterOptions) *JetStreamCluster {
	t.Helper()
	c := &JetStreamCluster{name: opts.Name, Credentials: withDefaults(opts.Credentials)}
	if c.name == "" {
		c.name = "slipway"
	}
	c.accounts = accountsBlock(t, c.Credentials, true)
	for i := range c.Nodes {
		// Each node routes to the ones already up; the first learns of
		// the others when they connect to it.
		n := &NATSServer{StoreDir: t.TempDir()}
		n.configure = func() (*server.Options, error) { return c.options(i, n.StoreDir) }
		c.Nodes[i] = startNATS(t, n)
		c.mu.Lock()
		c.routePorts[i] = c.Nodes[i].Server().ClusterAddr().Port
		c.mu.Unlock()
	}
	c.WaitJetStreamReady(t, "")
	return c
}

func withDefaults(cr Credentials) Credentials {
	if cr.User == "" && cr.NKeySeed == "" {
		cr.User, cr.Password = "slipway", randomSecret()
	}
	return cr
}

func randomSecret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// accountsBlock is the nats-server configuration of Account with the
// client user (and extra user entries), in the syntax an operator writes;
// jetStream enables JetStream for the account.
func accountsBlock(t testing.TB, cr Credentials, jetStream bool, extra ...string) string {
	t.Helper()
	user := fmt.Sprintf("{ user: %q, password: %q }", cr.User, cr.Password)
	if cr.NKeySeed != "" {
		pub, _ := cr.nkey(t)
		user = fmt.Sprintf("{ nkey: %q }", pub)
	}
	js := ""
	if jetStream {
		js = "jetstream: enabled, "
	}
	return fmt.Sprintf("accounts { %s { %susers: [ %s ] } }\n", Account, js, strings.Join(append([]string{user}, extra...), ", "))
}

// configured parses a configuration text into options.
func configured(conf string) (*server.Options, error) {
	o := &server.Options{}
	return o, o.ProcessConfigString(conf)
}

func (c *JetStreamCluster) options(i int, storeDir string) (*server.Options, error) {
	o, err := configured(c.accounts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var routes []string
	for j, p := range c.routePorts {
		if j != i && p != 0 {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
	}
	o.ServerName = fmt.Sprintf("n%d", i+1)
	o.JetStream, o.StoreDir = true, storeDir
	o.Cluster = server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: cmp.Or(c.routePorts[i], server.RANDOM_PORT)}
	o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	return o, nil
}

// URLs is the comma-separated client URL list of all nodes, as nats.url
// takes it.
func (c *JetStreamCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Kill shuts node i down; its clients reconnect to the other nodes.
func (c *JetStreamCluster) Kill(i int) { c.Nodes[i].Shutdown() }

// Restart starts node i again on its ports with its store directory.
func (c *JetStreamCluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.Nodes[i].Restart(t)
}

// Connect opens a client connection to all nodes as the cluster's user
// (see NATSServer.Connect).
func (c *JetStreamCluster) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connect(t, c.URLs(), append(c.Credentials.options(t), opts...)...)
}

func (cr Credentials) options(t testing.TB) []nats.Option {
	t.Helper()
	if cr.NKeySeed == "" {
		return []nats.Option{nats.UserInfo(cr.User, cr.Password)}
	}
	pub, kp := cr.nkey(t)
	return []nats.Option{nats.Nkey(pub, kp.Sign)}
}

func (cr Credentials) nkey(t testing.TB) (string, nkeys.KeyPair) {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(cr.NKeySeed))
	if err != nil {
		t.Fatalf("testkit: nkey seed: %v", err)
	}
	pub, _ := kp.PublicKey()
	return pub, kp
}

// running is the server of node i, nil while it is down.
func (c *JetStreamCluster) running(i int) *server.Server {
	if srv := c.Nodes[i].Server(); srv != nil && srv.Running() {
		return srv
	}
	return nil
}

// StreamLeader is the index of the node that leads stream (in Account), or
// -1 while it has none.
func (c *JetStreamCluster) StreamLeader(stream string) int {
	for i := range c.Nodes {
		if srv := c.running(i); srv != nil && srv.JetStreamIsStreamLeader(Account, stream) {
			return i
		}
	}
	return -1
}

// WaitJetStreamReady waits until the running nodes have elected a meta
// leader that counts every one of them as an online peer (before that, a
// stream with three replicas finds "no suitable peers for placement") and,
// unless stream is empty, until stream has a leader and every running
// node's replica of it is current.
func (c *JetStreamCluster) WaitJetStreamReady(t testing.TB, stream string) {
	t.Helper()
	what := "JetStream meta leader with every running node as peer"
	if stream != "" {
		what += ", and current replicas of stream " + stream
	}
	WaitFor(t, what, func() bool {
		running, peers := 0, 0
		for i := range c.Nodes {
			srv := c.running(i)
			if srv == nil {
				continue
			}
			running++
			if srv.JetStreamIsLeader() {
				peers = len(srv.JetStreamClusterPeers())
			}
			if stream != "" && !srv.JetStreamIsStreamCurrent(Account, stream) {
				return false
			}
		}
		return running > 0 && peers == running && (stream == "" || c.StreamLeader(stream) >= 0)
	})
}
