package testkit

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// WriteKeyFiles writes key as PEM files in a new temporary directory, the
// way a configuration names a signing key: the private key (PKCS#8
// "PRIVATE KEY") and its public key (PKIX "PUBLIC KEY"). It returns their
// paths.
func WriteKeyFiles(t testing.TB, key crypto.Signer) (keyFile, pubFile string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testkit: marshal private key: %v", err)
	}
	dir := t.TempDir()
	keyFile, pubFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "key.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatalf("testkit: write private key: %v", err)
	}
	if err := os.WriteFile(pubFile, PublicKeyPEM(t, key.Public()), 0o600); err != nil {
		t.Fatalf("testkit: write public key: %v", err)
	}
	return keyFile, pubFile
}
