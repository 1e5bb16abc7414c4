package ingest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/ingest"
)

// testCA issues certificates for TLS tests; nothing is committed, every
// test makes its own.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a PEM certificate and key: a server's for 127.0.0.1, or a
// client's.
func (ca *testCA) issue(t *testing.T, serial int64, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "ingest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if client {
		tmpl.Subject.CommonName, tmpl.IPAddresses = "registry", nil
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// clientCert is issue for a client, as crypto/tls takes it.
func (ca *testCA) clientCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(ca.issue(t, 100, true))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeFile writes b to path the way a secret store does: a new file
// renamed over the old one, with mtime set (the reload must not depend on
// the file system's timestamp granularity).
func writeFile(t *testing.T, path string, b []byte, mtime time.Time) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsConfig is a configuration with one source, served over HTTPS with a
// certificate of ca (serial 1) written under dir.
func tlsConfig(t *testing.T, ca *testCA, dir string) *config.Config {
	t.Helper()
	cfg := testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()})
	cfg.Ingest.TLS = &config.IngestTLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	crt, key := ca.issue(t, 1, false)
	writeFile(t, cfg.Ingest.TLS.CertFile, crt, time.Now())
	writeFile(t, cfg.Ingest.TLS.KeyFile, key, time.Now())
	return cfg
}

// serveTLS runs the service over HTTPS with a certificate of a new CA;
// edit, when given, changes ingest.tls (files go in dir) before the start.
func serveTLS(t *testing.T, edit func(c *config.IngestTLS, dir string)) (*rig, *testCA, *config.Config, string) {
	t.Helper()
	r, ca, dir := newRig(t), newTestCA(t, "slipway test CA"), t.TempDir()
	cfg := tlsConfig(t, ca, dir)
	if edit != nil {
		edit(cfg.Ingest.TLS, dir)
	}
	addr, _ := r.runService(t, cfg)
	return r, ca, cfg, addr
}

// wantStored fails unless the stream holds n events.
func wantStored(t *testing.T, r *rig, n int, which string) {
	t.Helper()
	if got := len(storedEvents(t, r.stream)); got != n {
		t.Fatalf("%d events stored, want %d: %s", got, n, which)
	}
}

// httpsClient trusts roots and presents certs; every request is a new
// connection (a new handshake).
func httpsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs},
		DisableKeepAlives: true,
	}}
}

// TestTLS: with ingest.tls the listener speaks HTTPS only; a registry that
// trusts the CA delivers as usual.
func TestTLS(t *testing.T) {
	r, ca, _, addr := serveTLS(t, nil)

	client := httpsClient(ca.pool())
	code, got, _ := postWith(t, client, "https://"+addr+"/webhooks/dev-registry", envelope(distPush("e1", "team/web", "1.0.0")), nil)
	if code != http.StatusAccepted {
		t.Fatalf("HTTPS webhook: %d %v, want 202", code, got)
	}
	resp, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("/readyz over HTTPS: %d, TLS %+v", resp.StatusCode, resp.TLS)
	}

	// Registries built on Go's default transport negotiate HTTP/2.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}, ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	resp, err = h2.Post("https://"+addr+"/webhooks/dev-registry", "application/json", bytes.NewReader(envelope(distPush("e3", "team/web", "1.0.2"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/2 webhook: %d over %s, want 202 over HTTP/2", resp.StatusCode, resp.Proto)
	}

	// net/http answers a plain request on a TLS port with a bare 400; the
	// webhook must not get through either way.
	if resp, err := http.Post("http://"+addr+"/webhooks/dev-registry", "application/json", bytes.NewReader(envelope(distPush("e2", "team/web", "1.0.1")))); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			t.Fatal("plain HTTP to the TLS port was accepted")
		}
	}
	// A client that does not trust the CA stops at the handshake.
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil {
		t.Fatal("a client without the CA completed a handshake")
	}
	wantStored(t, r, 2, "only the HTTPS deliveries'")
}

// TestTLSMinVersion: minVersion 1.3 refuses a TLS 1.2 client.
func TestTLSMinVersion(t *testing.T) {
	_, ca, _, addr := serveTLS(t, func(c *config.IngestTLS, _ string) { c.MinVersion = "1.3" })

	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 handshake succeeded with minVersion 1.3")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool()})
	if err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	defer conn.Close()
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3", v)
	}
}

// TestMutualTLS: with clientCAFile a registry must present a certificate
// signed by that CA; without one, or with another CA's, the handshake
// fails and nothing is read.
func TestMutualTLS(t *testing.T) {
	clientCA, rogueCA := newTestCA(t, "registries CA"), newTestCA(t, "rogue CA")
	r, serverCA, _, addr := serveTLS(t, func(c *config.IngestTLS, dir string) {
		c.ClientCAFile = filepath.Join(dir, "clients-ca.crt")
		writeFile(t, c.ClientCAFile, clientCA.pem, time.Now())
	})
	url := "https://" + addr + "/webhooks/dev-registry"

	// TLS 1.2 shows it in the handshake itself (in 1.3 the client learns
	// of the refusal on its first read, which the POSTs below do).
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: serverCA.pool(), MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
	for name, client := range map[string]*http.Client{
		"no certificate":        httpsClient(serverCA.pool()),
		"another CA's":          httpsClient(serverCA.pool(), rogueCA.clientCert(t)),
		"the server's own CA's": httpsClient(serverCA.pool(), serverCA.clientCert(t)),
	} {
		resp, err := client.Post(url, "application/json", bytes.NewReader(envelope(distPush("bad-"+name, "team/web", "9.9.9"))))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: %d, want the handshake refused", name, resp.StatusCode)
		}
	}

	good := httpsClient(serverCA.pool(), clientCA.clientCert(t))
	if code, got, _ := postWith(t, good, url, envelope(distPush("e1", "team/web", "1.0.0")), nil); code != http.StatusAccepted {
		t.Fatalf("with a client certificate: %d %v, want 202", code, got)
	}
	wantStored(t, r, 1, "only the authenticated client's")
}

// TestTLSCertificateRotation: a certificate replaced on disk is served
// from the next handshake on, without a restart; a half-written pair (the
// certificate renewed, the key not yet) leaves the old one in service.
func TestTLSCertificateRotation(t *testing.T) {
	_, ca, cfg, addr := serveTLS(t, nil)
	client := httpsClient(ca.pool())
	serial := func() int64 {
		t.Helper()
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serving serial %d, want 1", s)
	}

	crt, key := ca.issue(t, 2, false)
	later := time.Now().Add(time.Minute)
	writeFile(t, cfg.Ingest.TLS.CertFile, crt, later)
	if s := serial(); s != 1 {
		t.Fatalf("with the new certificate but the old key: serial %d, want the old certificate (1)", s)
	}
	writeFile(t, cfg.Ingest.TLS.KeyFile, key, later)
	if s := serial(); s != 2 {
		t.Fatalf("after rotation: serial %d, want 2", s)
	}

	writeFile(t, cfg.Ingest.TLS.CertFile, []byte("not a certificate"), later.Add(time.Minute))
	if s := serial(); s != 2 {
		t.Fatalf("after a broken write: serial %d, want 2 still", s)
	}
	code, _, _ := postWith(t, client, "https://"+addr+"/webhooks/dev-registry", envelope(distPush("e1", "team/web", "1.0.0")), nil)
	if code != http.StatusAccepted {
		t.Fatalf("webhook after rotation: %d", code)
	}
}

// TestTLSBadFilesFailRun: Run refuses to start on a pair that does not
// load, naming the key.
func TestTLSBadFilesFailRun(t *testing.T) {
	r := newRig(t)
	ca := newTestCA(t, "slipway test CA")
	cfg := tlsConfig(t, ca, t.TempDir())
	_, otherKey := ca.issue(t, 2, false)
	writeFile(t, cfg.Ingest.TLS.KeyFile, otherKey, time.Now())
	cfg.Ingest.Listen = "127.0.0.1:0"
	err := ingest.New().Run(t.Context(), r.deps(cfg))
	if err == nil || !strings.Contains(err.Error(), "ingest.tls: certFile and keyFile do not load as a pair") {
		t.Fatalf("Run with a mismatched pair: %v", err)
	}
}
