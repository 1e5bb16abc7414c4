package ingest

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// serverTLS is the TLS configuration of ingest's listener. A client CA
// makes a certificate signed by it mandatory: without one the handshake
// fails, before any HTTP is read.
func serverTLS(t *config.IngestTLS, log *slog.Logger) (*tls.Config, error) {
	v, err := t.Version()
	if err != nil {
		return nil, fmt.Errorf("ingest.tls.minVersion: %w", err)
	}
	pool, err := t.ClientCAs()
	if err != nil {
		return nil, fmt.Errorf("ingest.tls.clientCAFile: %w", err)
	}
	certs, err := newCertReloader(t.CertFile, t.KeyFile, log)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: v, GetCertificate: certs.certificate}
	if pool != nil {
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certReloader serves ingest.tls's certificate and reads it again when
// either file changed: cert-manager, DC/OS secrets and Vault agents replace
// the files in place, and operators expect the new certificate without a
// restart. A handshake costs two stats; the files are read only on change.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.Mutex
	cert *tls.Certificate
	// seen is what the files looked like when last read, whether they
	// loaded or not: a broken pair is not read again on every handshake,
	// only once a file changes again (e.g. the key written after the cert).
	seen [2]fileStamp
}

type fileStamp struct{ modNano, size int64 }

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	seen, err := r.stamps()
	if err != nil {
		return nil, fmt.Errorf("ingest.tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("ingest.tls: certFile and keyFile do not load as a pair: %w", err)
	}
	r.cert, r.seen = &cert, seen
	return r, nil
}

func (r *certReloader) stamps() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, err
		}
		out[i] = fileStamp{fi.ModTime().UnixNano(), fi.Size()}
	}
	return out, nil
}

// certificate is tls.Config.GetCertificate.
func (r *certReloader) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now, err := r.stamps()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || now == r.seen {
		// A file that is gone for a moment (being replaced) leaves the
		// current certificate in service.
		return r.cert, nil
	}
	r.seen = now
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("ingest.tls: the changed certificate does not load; still serving the previous one", "error", err)
		return r.cert, nil
	}
	r.cert = &cert
	r.log.Info("ingest.tls: certificate reloaded", "subject", cert.Leaf.Subject.String(), "notAfter", cert.Leaf.NotAfter)
	return r.cert, nil
}
