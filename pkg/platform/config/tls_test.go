package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate and its key as PEM files under dir and
// returns their paths.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	// Ed25519: the loader must not care which key type a pair uses.
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for f, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestIngestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a")
	otherCert, _ := selfSigned(t, dir, "b")
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := func(tls string) []byte { return []byte("ingest:\n  tls: " + tls + "\n") }

	cfg, err := Parse(doc(`{certFile: "`+cert+`", keyFile: "`+key+`", clientCAFile: "`+otherCert+`"}`), env(nil))
	if err != nil {
		t.Fatalf("a valid pair and client CA: %v", err)
	}
	if v, _ := cfg.Ingest.TLS.Version(); cfg.Ingest.TLS.MinVersion != "1.2" || v == 0 {
		t.Errorf("minVersion defaults to %q", cfg.Ingest.TLS.MinVersion)
	}
	if cfg, err := Parse([]byte("ingest: {listen: ':8443'}\n"), env(nil)); err != nil || cfg.Ingest.TLS != nil {
		t.Errorf("no tls key: %v, %+v", err, cfg.Ingest.TLS)
	}
	if _, err := Parse(doc(`{certFile: "`+cert+`", keyFile: "`+key+`", minVersion: "1.3"}`), env(nil)); err != nil {
		t.Errorf("minVersion 1.3: %v", err)
	}

	for _, tc := range []struct{ name, tls, want string }{
		{"no files", `{minVersion: "1.2"}`, "ingest.tls.certFile: is required"},
		{"no key", `{certFile: "` + cert + `"}`, "ingest.tls.keyFile: is required"},
		{"missing file", `{certFile: "` + cert + `", keyFile: "` + filepath.Join(dir, "nope.key") + `"}`, "ingest.tls.keyFile: stat "},
		{"not a pair", `{certFile: "` + otherCert + `", keyFile: "` + key + `"}`, "ingest.tls: certFile and keyFile do not load as a pair"},
		{"swapped", `{certFile: "` + key + `", keyFile: "` + cert + `"}`, "ingest.tls: certFile and keyFile do not load as a pair"},
		{"client CA not PEM", `{certFile: "` + cert + `", keyFile: "` + key + `", clientCAFile: "` + notPEM + `"}`, "ingest.tls.clientCAFile: " + notPEM + " holds no PEM certificate"},
		{"client CA missing", `{certFile: "` + cert + `", keyFile: "` + key + `", clientCAFile: "` + filepath.Join(dir, "nope.crt") + `"}`, "ingest.tls.clientCAFile: open "},
		{"old version", `{certFile: "` + cert + `", keyFile: "` + key + `", minVersion: "1.1"}`, `ingest.tls.minVersion: "1.1" must be 1.2 or 1.3`},
		{"typo", `{certfile: "` + cert + `", keyFile: "` + key + `"}`, "ingest.tls.certfile: unknown key; did you mean `certFile`? (line 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(doc(tc.tls), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
