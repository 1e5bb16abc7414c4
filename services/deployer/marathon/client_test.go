package marathon

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

func TestGetRetriesA503BurstThenSucceeds(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/a"}`)
	c, _ := f.start(t, config.MarathonAuth{})
	f.failNext(503, 503, 429, 502)
	if _, err := c.GetApp(ctxT(t), "/dev/a"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requestLog()); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	f := newFake(t)
	c, _ := f.start(t, config.MarathonAuth{}, WithRetry(3, time.Millisecond))
	f.failNext(503, 503, 503, 503, 503)
	err := c.Ping(ctxT(t))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requestLog()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestPutRetriesOnlyWhatMarathonDidNotProcess(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/a"}`)
	c, _ := f.start(t, config.MarathonAuth{})
	fields := map[string]json.RawMessage{"instances": json.RawMessage(`2`)}

	f.failNext(503, 503)
	if _, err := c.UpdateApp(ctxT(t), "/dev/a", fields, false); err != nil {
		t.Fatalf("after a 503 burst: %v", err)
	}
	if n := len(f.requestLog()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	f.failNext(500)
	_, err := c.UpdateApp(ctxT(t), "/dev/a", fields, true)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 || apiErr.Method != "PUT" {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requestLog()); n != 4 {
		t.Errorf("a PUT that got 500 was retried: %d requests, want 4", n)
	}

	f.failNext(502)
	if _, err := c.CancelDeployment(ctxT(t), "dep-1", false); err == nil {
		t.Fatal("DELETE after 502 succeeded")
	}
	if n := len(f.requestLog()); n != 5 {
		t.Errorf("a DELETE that got 502 was retried: %d requests, want 5", n)
	}
}

// 408 and 425 say the server did not act on the request (the one HTTP
// retry rule), so a write is sent again; 501 never changes, so even a GET
// is not.
func TestPutRetriesTooEarlyAndRequestTimeout(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/a"}`)
	c, _ := f.start(t, config.MarathonAuth{})
	f.failNext(425, 408)
	if _, err := c.UpdateApp(ctxT(t), "/dev/a", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, false); err != nil {
		t.Fatalf("after 425 and 408: %v", err)
	}
	if n := len(f.requestLog()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	f.failNext(501)
	var apiErr *APIError
	if _, err := c.GetApp(ctxT(t), "/dev/a"); !errors.As(err, &apiErr) || apiErr.StatusCode != 501 {
		t.Fatalf("err = %v, want the 501", err)
	}
	if n := len(f.requestLog()); n != 4 {
		t.Errorf("a GET that got 501 was retried: %d requests, want 4", n)
	}
}

func TestPutIsNotResentAfterTheConnectionBroke(t *testing.T) {
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		puts.Add(1)
		// Marathon may have applied the change; the answer is lost.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, err := New("c1", config.Marathon{URL: srv.URL}, WithRetry(5, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateApp(ctxT(t), "/dev/a", map[string]json.RawMessage{"instances": json.RawMessage(`1`)}, false)
	if err == nil || !strings.Contains(err.Error(), "marathon c1: PUT /v2/apps/dev/a") {
		t.Fatalf("err = %v", err)
	}
	if n := puts.Load(); n != 1 {
		t.Errorf("PUT sent %d times", n)
	}
	// The same failure on a GET is retried.
	puts.Store(0)
	if err := c.Ping(ctxT(t)); err == nil {
		t.Fatal("ping succeeded")
	}
	if n := puts.Load(); n != 5 {
		t.Errorf("GET sent %d times, want 5", n)
	}
}

func TestConnectionRefusedIsRetriedForWrites(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused
	var logs syncBuffer
	c, err := New("c1", config.Marathon{URL: "http://" + addr + "/service/marathon"}, WithRetry(3, time.Millisecond),
		WithLogger(slogTo(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CancelDeployment(ctxT(t), "d1", false)
	if err == nil || !strings.Contains(err.Error(), "marathon c1: DELETE /v2/deployments/d1") || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(logs.String(), "retrying"); n != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", n, logs.String())
	}
}

func TestContextEndsRetries(t *testing.T) {
	answered := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		message(w, http.StatusServiceUnavailable, "no leader")
		answered <- struct{}{}
	}))
	defer srv.Close()
	c, err := New("c", config.Marathon{URL: srv.URL}, WithRetry(100, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-answered
		cancel() // the client is now waiting an hour before the next attempt
	}()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	f.basic = true
	f.authorized = func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "deployer" && p == "s3cret-pw"
	}
	var logs syncBuffer
	for _, auth := range []config.MarathonAuth{
		{Basic: &config.BasicAuth{Username: "deployer", Password: "s3cret-pw"}},
		{Basic: &config.BasicAuth{Username: "deployer", PasswordFile: pwFile}},
	} {
		c, _ := f.start(t, auth, WithLogger(slogTo(&logs)))
		if err := c.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := f.start(t, config.MarathonAuth{Basic: &config.BasicAuth{Username: "deployer", Password: "wrong-pw"}}, WithLogger(slogTo(&logs)))
	err := c.Ping(ctxT(t))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{err.Error(), logs.String()} {
		if strings.Contains(s, "wrong-pw") || strings.Contains(s, "s3cret-pw") {
			t.Errorf("a password leaked: %s", s)
		}
	}
}

func TestStaticToken(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tokFile, []byte("eyJ.static.token\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	f.authorized = func(r *http.Request) bool { return r.Header.Get("Authorization") == "token=eyJ.static.token" }
	for _, auth := range []config.MarathonAuth{{Token: "eyJ.static.token"}, {TokenFile: tokFile}} {
		c, _ := f.start(t, auth)
		if _, err := c.ListApps(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := f.start(t, config.MarathonAuth{Token: "revoked-token"})
	err := c.Ping(ctxT(t))
	if err == nil || strings.Contains(err.Error(), "revoked-token") {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(strings.Join(f.requestLog(), "\n"), "GET /ping"); n != 1 {
		t.Errorf("a static token's 401 was retried: %d pings", n)
	}
}

func TestNewChecksTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	for name, cfg := range map[string]config.Marathon{
		"no url":         {},
		"bad scheme":     {URL: "ftp://master"},
		"no host":        {URL: "http:///x"},
		"credentials":    {URL: "https://admin:pw@master/service/marathon"},
		"query":          {URL: "https://master/?a=b"},
		"two auths":      {URL: "http://m", Auth: config.MarathonAuth{None: true, Token: "x"}},
		"basic no user":  {URL: "http://m", Auth: config.MarathonAuth{Basic: &config.BasicAuth{Password: "x"}}},
		"missing pwfile": {URL: "http://m", Auth: config.MarathonAuth{Basic: &config.BasicAuth{Username: "u", PasswordFile: filepath.Join(dir, "none")}}},
		"dcos no key":    {URL: "http://m", Auth: config.MarathonAuth{DCOS: &config.DCOSAuth{UID: "u"}}},
		"dcos bad key":   {URL: "http://m", Auth: config.MarathonAuth{DCOS: &config.DCOSAuth{UID: "u", PrivateKeyFile: notPEM}}},
		"missing ca":     {URL: "https://m", CAFile: filepath.Join(dir, "none.pem")},
		"ca not pem":     {URL: "https://m", CAFile: notPEM},
	} {
		_, err := New("c1", cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "marathon c1: ") {
			t.Errorf("%s: %v does not name the cluster", name, err)
		}
		if strings.Contains(err.Error(), ":pw@") {
			t.Errorf("%s: %v shows the password", name, err)
		}
	}
	c, err := New("c1", config.Marathon{URL: "http://127.0.0.1:8080", Auth: config.MarathonAuth{None: true}})
	if err != nil || c.Cluster() != "c1" || c.URL() != "http://127.0.0.1:8080" {
		t.Fatalf("New = %v, %v", c, err)
	}
}

func TestTLSWithCAFile(t *testing.T) {
	f := newFake(t)
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := New("tls", config.Marathon{URL: srv.URL, CAFile: caFile}, WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("with the CA: %v", err)
	}

	// A caller's own client gets the CA too, and is not modified.
	own := &http.Client{Transport: &http.Transport{MaxIdleConns: 3}}
	c, err = New("tls", config.Marathon{URL: srv.URL, CAFile: caFile}, WithHTTPClient(own), WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("own client with the CA: %v", err)
	}
	// (Clone itself may give it a TLS config for HTTP/2, but never roots.)
	if tc := own.Transport.(*http.Transport).TLSClientConfig; tc != nil && tc.RootCAs != nil {
		t.Error("the caller's transport was modified")
	}

	c, err = New("tls", config.Marathon{URL: srv.URL}, WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctxT(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}

	if _, err := New("tls", config.Marathon{URL: srv.URL, CAFile: caFile},
		WithHTTPClient(&http.Client{Transport: roundTripFunc(http.DefaultTransport.RoundTrip)})); err == nil {
		t.Error("a CA file with a transport that cannot take it was accepted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNonJSONErrorBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/apps/html" {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("not allowed\n\x00here"))
	}))
	defer srv.Close()
	c, err := New("c", config.Marathon{URL: srv.URL}, WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetApp(ctxT(t), "/html")
	if err == nil || err.Error() != "marathon c: GET /v2/apps/html: 502 Bad Gateway" {
		t.Errorf("err = %v", err)
	}
	_, err = c.GetApp(ctxT(t), "/x")
	if err == nil || err.Error() != "marathon c: GET /v2/apps/x: 403 Forbidden: not allowed  here" {
		t.Errorf("err = %q", err)
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := backoff(100*time.Millisecond, 10*time.Second, n)
		full := min(100*time.Millisecond<<min(n-1, 20), 10*time.Second)
		if d < full/2 || d > full {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", n, d, full/2, full)
		}
	}
	if backoff(0, time.Second, 3) != 0 {
		t.Error("zero base must not wait")
	}
}

func slogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
