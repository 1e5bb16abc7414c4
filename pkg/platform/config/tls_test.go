package config

import (
	"strings"
	"testing"
)

// A typo in ingest.tls is the loader's to find (ingest checks the rest).
func TestIngestTLSTypo(t *testing.T) {
	_, err := Parse([]byte("ingest:\n  tls: {certfile: a.crt, keyFile: a.key}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "certfile") {
		t.Fatalf("error = %v, want it to name certfile", err)
	}
}
