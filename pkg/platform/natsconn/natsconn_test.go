package natsconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestClientAuth connects to servers that demand each kind of credential
// the configuration offers, and checks that a wrong one is refused.
func TestClientAuth(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		server    *server.Options
		good, bad config.NATS
	}{
		{"user/password", &server.Options{Username: "slipway", Password: "s3cret"},
			config.NATS{User: "slipway", Password: "s3cret"}, config.NATS{User: "slipway", Password: "wrong"}},
		{"token", &server.Options{Authorization: "t0ken"},
			config.NATS{Token: "t0ken"}, config.NATS{Token: "nope"}},
		{"nkey", &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}},
			config.NATS{NKeyFile: seedFile}, config.NATS{NKeyFile: otherFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.server)
			good, err := Dial(tc.good, s.ClientURL(), "test")
			if err != nil {
				t.Fatalf("right credentials refused: %v", err)
			}
			good.Close()
			if bad, err := Dial(tc.bad, s.ClientURL(), "test"); err == nil {
				bad.Close()
				t.Fatal("wrong credentials accepted")
			}
		})
	}
}

// TestClientTLS connects over TLS, trusting the server through caFile, and
// fails without it.
func TestClientTLS(t *testing.T) {
	caFile, serverTLS := testCA(t)
	s := startServer(t, &server.Options{TLSConfig: serverTLS, TLS: true})
	conn, err := Dial(config.NATS{TLS: config.TLS{CAFile: caFile}}, s.ClientURL(), "test")
	if err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	if !conn.NC.TLSRequired() {
		t.Error("connection is not TLS")
	}
	conn.Close()
	if conn, err := Dial(config.NATS{}, "tls://"+s.Addr().String(), "test"); err == nil {
		conn.Close()
		t.Fatal("an untrusted server certificate was accepted")
	}
}

func TestEmbeddedServerListensAndStores(t *testing.T) {
	dir := t.TempDir()
	s, err := StartEmbedded(config.Embedded{Listen: "127.0.0.1:0", StoreDir: dir}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream is off")
	}
	if got, want := s.JetStreamConfig().StoreDir, filepath.Join(dir, "jetstream"); got != want {
		t.Errorf("store dir = %q, want %q", got, want)
	}
	// An outside client reaches it on its listen address.
	c, err := Dial(config.NATS{}, s.ClientURL(), "outside")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	if _, err := StartEmbedded(config.Embedded{Listen: "no-port", StoreDir: dir}, quiet); err == nil {
		t.Error("a listen address without port must be refused")
	}
}

// TestEmbeddedListenAddressTakenFailsAtOnce starts the embedded server on
// an address another listener holds: start-up must fail with the bind error
// and the address, not wait out the server's readiness timeout in silence.
func TestEmbeddedListenAddressTakenFailsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	done := make(chan error, 1)
	go func() {
		c, err := Connect(context.Background(), config.NATS{Embedded: config.Embedded{Listen: addr, StoreDir: t.TempDir()}}, quiet, "test")
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the embedded server started on a taken address")
		}
		for _, want := range []string{addr, "address already in use"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no start-up error within 10s")
	}
}

func TestClientURL(t *testing.T) {
	if got := ClientURL(config.NATS{Embedded: config.Embedded{Listen: "127.0.0.1:4222"}}); got != "nats://127.0.0.1:4222" {
		t.Errorf("embedded: %q", got)
	}
	if got := ClientURL(config.NATS{URL: "nats://a:4222,nats://b:4222"}); got != "nats://a:4222,nats://b:4222" {
		t.Errorf("remote: %q", got)
	}
}

// testCA makes a CA and a server certificate for 127.0.0.1, and returns
// the CA's PEM file and the server's TLS configuration.
func testCA(t *testing.T) (string, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slipway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		MinVersion:   tls.VersionTLS12,
	}
}
