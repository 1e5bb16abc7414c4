package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/ingest"
)

const (
	// floodMaxBody is ingest.maxBodyBytes in the flood: small, so that a
	// server reading past it would show.
	floodMaxBody = 64 << 10
	// readSlack is what the server may read beyond the body limit: request
	// line, headers, chunk framing and one buffer fill.
	readSlack = 16 << 10
	// hugeBody is what an oversized sender offers.
	hugeBody = 100 << 20
	hmacKey  = "k3y"
)

// countingListener counts, per connection, the bytes the server read.
type countingListener struct {
	net.Listener
	conns sync.Map // client address → *countingConn
}

type countingConn struct {
	net.Conn
	read   atomic.Int64
	once   sync.Once
	closed chan struct{}
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c, closed: make(chan struct{})}
	l.conns.Store(c.RemoteAddr().String(), cc)
	return cc, nil
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// readBy waits until the server closed the connection of the client at
// local and returns how much it read from it.
func (l *countingListener) readBy(local string) (int64, error) {
	v, ok := l.conns.Load(local)
	if !ok {
		return 0, fmt.Errorf("the server never accepted %s", local)
	}
	cc := v.(*countingConn)
	select {
	case <-cc.closed:
		return cc.read.Load(), nil
	case <-time.After(waitTimeout):
		return 0, fmt.Errorf("the server did not close the connection of a refused body")
	}
}

func signHMAC(body []byte) string {
	m := hmac.New(sha256.New, []byte(hmacKey))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// floodConfig has an HMAC source and a header source.
func floodConfig() *config.Config {
	cfg := testConfig(config.Registry{},
		config.Source{Name: "signed", Format: "distribution", Environment: "dev",
			Auth: &config.Auth{HMAC: &config.HMACAuth{Header: "X-Hub-Signature-256", Prefix: "sha256=", Secret: hmacKey}}},
		config.Source{Name: "header", Format: "distribution", Environment: "dev",
			Auth: &config.Auth{Header: &config.HeaderAuth{Name: "Authorization", Value: notifyToken}}},
	)
	cfg.Ingest.MaxBodyBytes = floodMaxBody
	return cfg
}

// hugeResult is what one oversized delivery came to.
type hugeResult struct {
	status     int
	sent       int64 // body bytes the client got onto the connection
	serverRead int64 // bytes the server read from the connection, headers included
}

// sendHuge offers a 100 MiB body on its own connection, chunked or with
// Content-Length, and reads the answer while still writing, as a registry
// (or an attacker) would.
func sendHuge(l *countingListener, addr, path string, hdr http.Header, chunked bool) (hugeResult, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return hugeResult{}, err
	}
	defer conn.Close()
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, addr)
	_ = hdr.Write(&head)
	if chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", hugeBody)
	}
	sent := make(chan int64, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		if chunked {
			chunk = append(append([]byte(fmt.Sprintf("%x\r\n", len(chunk))), chunk...), "\r\n"...)
		}
		var n int64
		_, err := conn.Write(head.Bytes())
		// Until the server stops reading and the connection closes (or,
		// were it to read everything, the whole body).
		for n < hugeBody && err == nil {
			_, err = conn.Write(chunk)
			if err == nil {
				n += 32 << 10
			}
		}
		if err == nil && chunked {
			_, _ = conn.Write([]byte("0\r\n\r\n"))
		}
		sent <- n
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return hugeResult{}, fmt.Errorf("no answer to a huge body: %w", err)
	}
	resp.Body.Close()
	res := hugeResult{status: resp.StatusCode}
	read, err := l.readBy(conn.LocalAddr().String())
	conn.Close() // ends the writer, were the server still reading
	res.sent, res.serverRead = <-sent, read
	return res, err
}

// TestFlood: while several goroutines send bad signatures, missing and
// wrong credentials and 100 MiB bodies, every good webhook is accepted and
// stored exactly once, nothing of the bad ones is stored, a refused body
// is not read beyond the limit, and an unauthenticated one not at all.
func TestFlood(t *testing.T) {
	r := newRig(t)
	h, err := ingest.NewHandler(r.deps(floodConfig()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	// Bad deliveries are well-formed pushes of tags no good one uses: if
	// any got through it would be in the stream.
	var badN atomic.Int64
	badBody := func() []byte {
		n := badN.Add(1)
		return envelope(distPush(fmt.Sprint("bad-", n), "team/flood", fmt.Sprint("bad-", n)))
	}
	bad := []struct {
		name, source string
		header       func(body []byte) http.Header
	}{
		{"wrong signature", "signed", func(b []byte) http.Header {
			return http.Header{"X-Hub-Signature-256": {signHMAC(append(b, ' '))}}
		}},
		{"no signature", "signed", func([]byte) http.Header { return nil }},
		{"no credentials", "header", func([]byte) http.Header { return nil }},
		{"wrong credentials", "header", func([]byte) http.Header { return http.Header{"Authorization": {notifyToken + "x"}} }},
	}
	huge := []struct {
		name, source string
		header       http.Header
		chunked      bool
		want         int
		maxRead      int64
	}{
		{"chunked, authenticated", "header", http.Header{"Authorization": {notifyToken}}, true, http.StatusRequestEntityTooLarge, floodMaxBody + readSlack},
		{"Content-Length, authenticated", "header", http.Header{"Authorization": {notifyToken}}, false, http.StatusRequestEntityTooLarge, readSlack},
		{"chunked, unauthenticated", "header", nil, true, http.StatusUnauthorized, readSlack},
		{"chunked, signed", "signed", http.Header{"X-Hub-Signature-256": {signHMAC(nil)}}, true, http.StatusRequestEntityTooLarge, floodMaxBody + readSlack},
	}

	const (
		goodSenders = 3
		goodAtLeast = 20 // each, and on until the flood is over
		floodRounds = 40 // per flooder, every bad kind each round
		flooders    = 4
		hugeRounds  = 2 // per kind
	)
	var (
		wg        sync.WaitGroup
		flood     sync.WaitGroup
		floodDone = make(chan struct{})
		mu        sync.Mutex
		goodTags  = map[string]bool{}
	)
	floodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: flooders}}
	t.Cleanup(floodClient.CloseIdleConnections)
	for f := range flooders {
		flood.Go(func() {
			for i := range floodRounds {
				b := bad[(f+i)%len(bad)]
				body := badBody()
				code, answer, err := postCode(t.Context(), floodClient, srv.URL+"/webhooks/"+b.source, body, b.header(body))
				if err != nil || code != http.StatusUnauthorized {
					t.Errorf("%s: %d %s %v, want 401", b.name, code, answer, err)
				}
			}
		})
	}
	for _, hg := range huge {
		for range hugeRounds {
			flood.Go(func() {
				res, err := sendHuge(cl, addr, "/webhooks/"+hg.source, hg.header, hg.chunked)
				switch {
				case err != nil:
					t.Errorf("%s: %v", hg.name, err)
				case res.status != hg.want:
					t.Errorf("%s: %d, want %d", hg.name, res.status, hg.want)
				case res.serverRead > hg.maxRead:
					t.Errorf("%s: the server read %d bytes, want at most %d", hg.name, res.serverRead, hg.maxRead)
				case res.sent >= hugeBody:
					t.Errorf("%s: the whole body was sent", hg.name)
				}
			})
		}
	}
	go func() { flood.Wait(); close(floodDone) }()

	goodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: goodSenders}}
	t.Cleanup(goodClient.CloseIdleConnections)
	for g := range goodSenders {
		wg.Go(func() {
			for i := 0; ; i++ {
				if i >= goodAtLeast {
					select {
					case <-floodDone:
						return
					default:
					}
				}
				tag := fmt.Sprintf("good-%d-%d", g, i)
				body := envelope(distPush(tag, "team/flood", tag))
				source, hdr := "header", http.Header{"Authorization": {notifyToken}}
				if i%2 == 0 {
					source, hdr = "signed", http.Header{"X-Hub-Signature-256": {signHMAC(body)}}
				}
				code, answer, err := postCode(t.Context(), goodClient, srv.URL+"/webhooks/"+source, body, hdr)
				if err != nil || code != http.StatusAccepted || !strings.Contains(answer, `"accepted":1,`) {
					t.Errorf("good webhook %s to %s: %d %s %v, want 202 accepted 1", tag, source, code, answer, err)
					return
				}
				mu.Lock()
				goodTags[tag] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-floodDone
	if t.Failed() {
		return
	}

	stored := map[string]int{}
	for _, e := range storedEvents(t, r.stream) {
		stored[pushedData(t, e).Tag]++
	}
	for tag, n := range stored {
		switch {
		case !goodTags[tag]:
			t.Errorf("event for %s stored: it came from a bad delivery", tag)
		case n != 1:
			t.Errorf("event for %s stored %d times", tag, n)
		}
	}
	for tag := range goodTags {
		if stored[tag] == 0 {
			t.Errorf("accepted webhook %s is not in the stream", tag)
		}
	}
	t.Logf("%d good webhooks stored once each through %d bad deliveries and %d oversized ones",
		len(goodTags), badN.Load(), len(huge)*hugeRounds)
}

// postCode posts body with hdr and returns the status and the answer.
func postCode(ctx context.Context, client *http.Client, url string, body []byte, hdr http.Header) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), err
}

// TestRefusedBodyAnswered: a sender still writing a body ingest refused
// (too large, or no credentials) gets the answer, not a reset connection,
// so a registry logs 413 or 401 rather than a network error.
func TestRefusedBodyAnswered(t *testing.T) {
	r := newRig(t)
	h, err := ingest.NewHandler(r.deps(floodConfig()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	body := bytes.Repeat([]byte("x"), 8<<20)
	for _, c := range []struct {
		name string
		hdr  http.Header
		want int
	}{
		{"too large", http.Header{"Authorization": {notifyToken}}, http.StatusRequestEntityTooLarge},
		{"no credentials", nil, http.StatusUnauthorized},
	} {
		code, answer, err := postCode(t.Context(), srv.Client(), srv.URL+"/webhooks/header", body, c.hdr)
		if err != nil || code != c.want {
			t.Errorf("%s: %d %s %v, want %d", c.name, code, answer, err, c.want)
		}
	}
}

// TestRejectionsAreLoggedSparingly: a flood of bad requests must not turn
// into a flood of log lines; the metric still counts every one.
func TestRejectionsAreLoggedSparingly(t *testing.T) {
	r := newRig(t)
	logs := &syncBuffer{}
	r.log = slog.New(slog.NewTextHandler(logs, nil))
	srv := r.serve(t, floodConfig())
	const n = 50
	start := time.Now()
	for range n {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/header", strings.NewReader("{}"))
		req.Header.Set("Authorization", notifyToken+"x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	lines := strings.Count(logs.String(), "webhook rejected")
	if allowed := 1 + int(time.Since(start)/(10*time.Second)); lines < 1 || lines > allowed {
		t.Errorf("%d log lines for %d rejections, want 1 to %d", lines, n, allowed)
	}
	if !strings.Contains(logs.String(), "rejected_since_last_line=1") {
		t.Errorf("the first line does not count its rejection:\n%s", logs.String())
	}
	if want := fmt.Sprintf(`slipway_ingest_requests_total{code="401",format="distribution",source="header"} %d`, n); !strings.Contains(get(t, srv.URL+"/metrics", http.StatusOK), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
