package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Version is MinVersion as a crypto/tls constant.
func (t *IngestTLS) Version() (uint16, error) {
	switch t.MinVersion {
	case "", "1.2": // the default
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
