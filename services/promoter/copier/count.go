package copier

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// counter is the bottom http.RoundTripper of the target's requests (under
// go-containerregistry's retry and auth layers, so it sees every attempt).
// go-containerregistry reports progress as bytes only; which blobs were
// already there, mounted or uploaded is visible only in the blob requests
// themselves:
//
//	HEAD /v2/<repo>/blobs/<digest>                    200 → already there
//	POST /v2/<repo>/blobs/uploads/?mount=<d>&from=<r> 201 → mounted
//	PUT  <upload location>?digest=<d>                 201 → uploaded
//	PATCH or PUT bodies, manifests excepted               → bytes sent
//
// Upload locations are whatever the registry answered (they may point at
// another host, e.g. object storage), so uploads are recognised by method
// and query, not by path. Blobs are counted once per digest, whatever the
// retries.
type counter struct {
	base http.RoundTripper

	mu      sync.Mutex
	skipped map[string]struct{}
	copied  map[string]struct{}
	mounted map[string]struct{}
	bytes   atomic.Int64
}

func newCounter(base http.RoundTripper) *counter {
	return &counter{
		base:    base,
		skipped: map[string]struct{}{},
		copied:  map[string]struct{}{},
		mounted: map[string]struct{}{},
	}
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	manifest := strings.Contains(req.URL.Path, "/manifests/")
	if !manifest && req.Body != nil && req.Body != http.NoBody && (req.Method == http.MethodPatch || req.Method == http.MethodPut) {
		// A RoundTripper must not modify the caller's request.
		r := req.Clone(req.Context())
		r.Body = &countingBody{ReadCloser: req.Body, n: &c.bytes}
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return &countingBody{ReadCloser: b, n: &c.bytes}, nil
			}
		}
		req = r
	}
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if !manifest {
		c.observe(req, resp.StatusCode)
	}
	return resp, nil
}

func (c *counter) observe(req *http.Request, status int) {
	if status != http.StatusOK && status != http.StatusCreated {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch req.Method {
	case http.MethodHead:
		if d := blobDigest(req.URL.Path); d != "" && status == http.StatusOK {
			c.skipped[d] = struct{}{}
		}
	case http.MethodPost:
		if d := req.URL.Query().Get("mount"); d != "" && status == http.StatusCreated {
			c.copied[d] = struct{}{}
			c.mounted[d] = struct{}{}
		}
	case http.MethodPut:
		if d := req.URL.Query().Get("digest"); d != "" && status == http.StatusCreated {
			c.copied[d] = struct{}{}
		}
	}
}

// fill sets the blob counts of res.
func (c *counter) fill(res *Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	res.BlobsCopied = len(c.copied)
	res.BlobsMounted = len(c.mounted)
	res.BlobsSkipped = 0
	for d := range c.skipped {
		if _, ok := c.copied[d]; !ok {
			res.BlobsSkipped++
		}
	}
	res.BytesCopied = c.bytes.Load()
}

// blobDigest is the digest of /v2/<repo>/blobs/<digest>, or "". The last
// "/blobs/" counts, since a repository name may contain "blobs".
func blobDigest(p string) string {
	i := strings.LastIndex(p, "/blobs/")
	if !strings.HasPrefix(p, "/v2/") || i < 0 {
		return ""
	}
	d := p[i+len("/blobs/"):]
	if !strings.HasPrefix(d, "sha256:") && !strings.HasPrefix(d, "sha512:") {
		return ""
	}
	return d
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
