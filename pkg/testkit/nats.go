// Package testkit holds the test helpers shared by every Slipway service's
// tests. Everything here runs the real thing in process: an embedded
// nats-server with JetStream, and CNCF Distribution's registry (which sends
// real notifications). See ARCHITECTURE.md, "What real means here".
package testkit

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds how long NATS and Restart wait for the server to accept
// connections.
const readyTimeout = 10 * time.Second

// NATSServer is an embedded nats-server with JetStream enabled, listening on
// 127.0.0.1. It is shut down in t.Cleanup.
type NATSServer struct {
	// URL is the client URL, nats://127.0.0.1:<port>. It stays the same
	// across Restart.
	URL string
	// StoreDir is the JetStream store directory (a t.TempDir). It stays the
	// same across Restart, so streams and their messages survive.
	StoreDir string

	mu   sync.Mutex
	port int
	srv  *server.Server

	// configure, when set, gives the options of a server that is not the
	// stand-alone default (a cluster node, a hub, a leaf); the client port
	// is set on them afterwards so that it survives Restart.
	configure func() (*server.Options, error)
	// noJetStream: the server runs without JetStream (a leaf that uses its
	// hub's), so start does not insist on it.
	noJetStream bool
}

// NATS starts an embedded JetStream-enabled nats-server on 127.0.0.1 with a
// random port and a fresh store directory, and shuts it down in t.Cleanup.
func NATS(t testing.TB) *NATSServer {
	t.Helper()
	return startNATS(t, &NATSServer{})
}

// startNATS starts s for the first time on a random client port (with a
// fresh store directory unless s has one) and shuts it down in t.Cleanup.
func startNATS(t testing.TB, s *NATSServer) *NATSServer {
	t.Helper()
	if s.StoreDir == "" {
		s.StoreDir = t.TempDir()
	}
	s.port = server.RANDOM_PORT
	srv := s.start(t)
	s.port = srv.Addr().(*net.TCPAddr).Port
	s.URL = srv.ClientURL()
	t.Cleanup(s.Shutdown)
	return s
}

func (s *NATSServer) options() (*server.Options, error) {
	o := &server.Options{ServerName: "testkit", JetStream: true, StoreDir: s.StoreDir}
	if s.configure != nil {
		var err error
		if o, err = s.configure(); err != nil {
			return nil, err
		}
	}
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", s.port, true, true
	return o, nil
}

func (s *NATSServer) start(t testing.TB) *server.Server {
	t.Helper()
	opts, err := s.options()
	if err != nil {
		t.Fatalf("testkit: nats-server options: %v", err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("testkit: nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		t.Fatalf("testkit: nats-server not ready for connections after %s", readyTimeout)
	}
	if !s.noJetStream && !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		t.Fatalf("testkit: nats-server started without JetStream")
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return srv
}

// Server returns the running server (a new one after each Restart).
func (s *NATSServer) Server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Shutdown stops the server and waits until it has shut down. Clients stay
// in their reconnect loop. It is safe to call more than once.
func (s *NATSServer) Shutdown() {
	srv := s.Server()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart starts the server again on the same port with the same store
// directory, so connected clients reconnect and JetStream streams (with their
// messages) survive. It shuts the running server down first if needed, and
// returns once the server accepts connections with JetStream enabled
// (streams are recovered from StoreDir during start-up).
func (s *NATSServer) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	s.start(t)
}

// Connect opens a client connection (closed in t.Cleanup) that reconnects
// forever with a short wait, and returns it with a JetStream handle. opts
// come last, so they may add credentials or override the defaults.
func (s *NATSServer) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connect(t, s.URL, opts...)
}

func connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name("testkit:" + t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(25 * time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatalf("testkit: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testkit: jetstream: %v", err)
	}
	return nc, js
}
