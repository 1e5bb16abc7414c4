package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// DefaultTLSMinVersion is ingest.tls.minVersion when unset.
const DefaultTLSMinVersion = "1.2"

// Version is MinVersion as a crypto/tls constant.
func (t *IngestTLS) Version() (uint16, error) {
	switch t.MinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q must be 1.2 or 1.3", t.MinVersion)
}

// ClientCAs reads ClientCAFile; nil when it is not set.
func (t *IngestTLS) ClientCAs() (*x509.CertPool, error) {
	if t.ClientCAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(t.ClientCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", t.ClientCAFile)
	}
	return pool, nil
}

// validateIngestTLS loads what the listener will load, so that a wrong
// path or a certificate that does not match its key fails `slipway config
// check` and the start, not the first registry's handshake.
func (c *Config) validateIngestTLS(p *problems) {
	t := c.Ingest.TLS
	if t == nil {
		return
	}
	const path = "ingest.tls"
	files := true
	for _, f := range []struct{ key, file string }{{"certFile", t.CertFile}, {"keyFile", t.KeyFile}} {
		if f.file == "" {
			p.add(path+"."+f.key, "is required")
			files = false
		} else if _, err := os.Stat(f.file); err != nil {
			p.add(path+"."+f.key, "%v", err)
			files = false
		}
	}
	if files {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			p.add(path, "certFile and keyFile do not load as a pair: %v", err)
		}
	}
	if _, err := t.ClientCAs(); err != nil {
		p.add(path+".clientCAFile", "%v", err)
	}
	if _, err := t.Version(); err != nil {
		p.add(path+".minVersion", "%v", err)
	}
}
