package copier

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// proxy is a reverse proxy in front of a test registry that logs requests
// and can answer some of them itself (a registry that is down).
type proxy struct {
	Host string

	mu   sync.Mutex
	log  []logged
	fail func(n int, r *http.Request) int // status to answer the n-th request (from 1) with, 0 to pass it on
}

type logged struct {
	Method, Path, Query string
	Status              int
}

func newProxy(t *testing.T, reg *testkit.Registry, fail func(n int, r *http.Request) int) *proxy {
	t.Helper()
	target, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{fail: fail}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(nil)
	self := "http://" + srv.Listener.Addr().String()
	// Distribution answers with absolute upload locations on its own
	// address; point them at the proxy so that every request passes here.
	rp.ModifyResponse = func(resp *http.Response) error {
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, reg.URL) {
			resp.Header.Set("Location", self+strings.TrimPrefix(loc, reg.URL))
		}
		return nil
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		n := len(p.log) + 1
		status := 0
		if p.fail != nil {
			status = p.fail(n, r)
		}
		p.log = append(p.log, logged{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: status})
		p.mu.Unlock()
		if status != 0 {
			http.Error(w, http.StatusText(status), status)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		p.mu.Lock()
		p.log[n-1].Status = sw.status
		p.mu.Unlock()
	})
	srv.Start()
	t.Cleanup(srv.Close)
	p.Host = srv.Listener.Addr().String()
	return p
}

func (p *proxy) requests() []logged {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]logged(nil), p.log...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
