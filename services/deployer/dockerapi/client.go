// Package dockerapi makes a Docker Engine API client from a cluster's
// docker block, for the platforms that speak that API (standalone Docker
// hosts, vSphere Integrated Containers, Docker Swarm).
//
// It uses github.com/docker/docker/client (v28), which still speaks API
// 1.24 and later: a VIC Virtual Container Host serves 1.25, and the newer
// github.com/moby/moby/client refuses any server below 1.40.
package dockerapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// MinAPIVersion is the oldest API this package's callers use: VIC's 1.25.
const MinAPIVersion = "1.25"

// Option adjusts the client (tests route it through a recording proxy).
type Option func(*options)

type options struct {
	httpClient *http.Client
}

// WithHTTPClient sends requests through hc (its transport must reach the
// configured host).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// New returns a client of the endpoint. With apiVersion set it speaks that
// version and nothing newer; without, it negotiates the highest version
// both sides speak at the first request.
func New(cfg config.Docker, opts ...Option) (*client.Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkHost(cfg.Host); err != nil {
		return nil, err
	}
	copts := []client.Opt{client.WithHost(cfg.Host), client.WithTraceOptions(otelhttp.WithSpanNameFormatter(spanName))}
	if cfg.APIVersion != "" {
		copts = append(copts, client.WithVersion(cfg.APIVersion))
	} else {
		copts = append(copts, client.WithAPIVersionNegotiation())
	}
	hc := o.httpClient
	if hc == nil && cfg.TLS != (config.DockerTLS{}) {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		hc = &http.Client{Transport: tr}
	}
	if hc != nil {
		copts = append(copts, client.WithHTTPClient(hc))
		if cfg.TLS != (config.DockerTLS{}) {
			copts = append(copts, client.WithScheme("https"))
		}
	}
	c, err := client.NewClientWithOpts(copts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", config.RedactURL(cfg.Host), err)
	}
	if cfg.APIVersion != "" {
		// Pinned: nothing to negotiate, Ready needs no ping.
		negotiated.Store(c, &negotiation{done: true})
	}
	return c, nil
}

func checkHost(host string) error {
	if host == "" {
		return fmt.Errorf("host is required (unix:///var/run/docker.sock or tcp://host:2376)")
	}
	u, err := url.Parse(host)
	if err != nil {
		return fmt.Errorf("host %q: %w", config.RedactURL(host), err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("host %q names no socket path", host)
		}
	case "tcp":
		if u.Host == "" {
			return fmt.Errorf("host %q names no address", config.RedactURL(host))
		}
	default:
		return fmt.Errorf("host %q must start with unix:// or tcp://", config.RedactURL(host))
	}
	return nil
}

func tlsConfig(t config.DockerTLS) (*tls.Config, error) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("certFile and keyFile go together")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("caFile %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// The error of LoadX509KeyPair names files, never key bytes.
			return nil, fmt.Errorf("certFile/keyFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

var versionRE = regexp.MustCompile(`^1\.(\d+)$`)

// CheckConfig checks a cluster's docker block (path is its key path,
// "clusters[1].docker"): the host, the TLS files, the API version.
func CheckConfig(d config.Docker, path string, p *config.Problems) {
	if err := checkHost(d.Host); err != nil {
		p.Add(path+".host", "%v", err)
	}
	if d.TLS != (config.DockerTLS{}) {
		if strings.HasPrefix(d.Host, "unix://") {
			p.Add(path+".tls", "is for tcp:// hosts; a unix socket takes no TLS")
		} else if _, err := tlsConfig(d.TLS); err != nil {
			p.Add(path+".tls", "%v", err)
		}
	}
	if d.APIVersion != "" {
		minor := -1
		if m := versionRE.FindStringSubmatch(d.APIVersion); m != nil {
			minor, _ = strconv.Atoi(m[1])
		}
		if minor < 0 {
			p.Add(path+".apiVersion", "%q must look like 1.25", d.APIVersion)
		} else if minor < 25 {
			p.Add(path+".apiVersion", "%q is older than %s, the oldest this deployer speaks (VIC serves 1.25)", d.APIVersion, MinAPIVersion)
		}
	}
	if d.Grace < 0 {
		p.Add(path+".grace", "must not be negative")
	}
}

// Ping checks that the endpoint answers, within timeout.
func Ping(ctx context.Context, c *client.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Ping(ctx)
	return err
}
