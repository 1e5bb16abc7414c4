package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Marathon sources cited in the tests are mesosphere/marathon at tag
// v1.10.26 unless a path says otherwise.

const seedApps = `[
  {"id":"/dev/app1","instances":2,"cpus":0.1,"mem":64,
   "container":{"type":"DOCKER","docker":{"image":"registry.local/apps/app1:1.0.0","forcePullImage":true}},
   "labels":{"slipway.policy":"minor","team":"payments"},
   "env":{"LOG_LEVEL":"info"},
   "healthChecks":[{"protocol":"HTTP","path":"/health"}]},
  {"id":"/dev/app2","cmd":"sleep 1000","labels":{"team":"search"}},
  {"id":"/prd/app1","instances":3,
   "container":{"type":"DOCKER","docker":{"image":"registry.local/apps/app1:0.9.0"}},
   "labels":{"slipway.policy":"patch"},
   "healthChecks":[{"protocol":"HTTP","path":"/health"}]}
]`

// waitTimeout bounds every wait in the tests; nothing waits on time to
// synchronise, this only turns a hang into a failure.
const waitTimeout = 10 * time.Second

type env struct {
	t   *testing.T
	emu *Emulator
	srv *httptest.Server
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.DeployDuration == 0 {
		opts.DeployDuration = 20 * time.Millisecond
	}
	emu := New(opts)
	if err := emu.Load([]byte(seedApps)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	return &env{t: t, emu: emu, srv: srv}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// must fails unless the response has the status.
func (e *env) must(status int, r response) response {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

func (e *env) app(id string) map[string]any {
	e.t.Helper()
	r := e.must(200, e.do("GET", "/v2/apps"+id, ""))
	return r.json(e.t)["app"].(map[string]any)
}

func image(app map[string]any) string {
	return app["container"].(map[string]any)["docker"].(map[string]any)["image"].(string)
}

func intField(m map[string]any, k string) int { return int(m[k].(float64)) }

// putImage changes an app's image the way a client must: the whole
// container object.
func (e *env) putImage(id, img, query string) response {
	e.t.Helper()
	return e.do("PUT", "/v2/apps"+id+query, `{"container":{"type":"DOCKER","docker":{"image":"`+img+`"}}}`)
}

func (e *env) wait(id string) DeploymentResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := e.emu.WaitDeployment(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// sse is an open /v2/events connection.
type sse struct {
	t    *testing.T
	resp *http.Response
	rd   *bufio.Reader
}

type sseEvent struct {
	typ  string
	data map[string]any
	raw  string
}

func (e *env) events(query string, headers ...string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v2/events"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		e.t.Fatalf("events: status %d: %s", resp.StatusCode, b)
	}
	s := &sse{t: e.t, resp: resp, rd: bufio.NewReader(resp.Body)}
	e.t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	// The stream is subscribed once the headers are in (serveEvents
	// subscribes before it answers). An unfiltered stream starts with its
	// own event_stream_attached; filters apply to it like to any event.
	if !strings.Contains(query, "event_type=") || strings.Contains(query, "event_type=event_stream_attached") {
		s.expect("event_stream_attached")
	}
	return s
}

// next reads one event, skipping heartbeats; it fails the test after
// waitTimeout.
func (s *sse) next() sseEvent {
	s.t.Helper()
	type result struct {
		ev  sseEvent
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var ev sseEvent
		var raw strings.Builder
		for {
			line, err := s.rd.ReadString('\n')
			if err != nil {
				ch <- result{err: err}
				return
			}
			raw.WriteString(line)
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.typ = strings.TrimSuffix(strings.TrimPrefix(line, "event: "), "\r\n")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(line, "data: "), "\r\n")), &ev.data); err != nil {
					ch <- result{err: err}
					return
				}
			case line == "\r\n" && ev.typ != "":
				ev.raw = raw.String()
				ch <- result{ev: ev}
				return
			case line == "\r\n":
				raw.Reset() // heartbeat
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			s.t.Fatalf("event stream: %v", r.err)
		}
		return r.ev
	case <-time.After(waitTimeout):
		s.t.Fatal("no event within the timeout")
		return sseEvent{}
	}
}

// expect reads events until one of type typ, failing on timeout.
func (s *sse) expect(typ string) sseEvent {
	s.t.Helper()
	for {
		ev := s.next()
		if ev.typ == typ {
			return ev
		}
	}
}

// expectFor reads events until one of type typ about the deployment id.
func (s *sse) expectFor(typ, id string) sseEvent {
	s.t.Helper()
	for {
		ev := s.expect(typ)
		if ev.data["id"] == id || planID(ev) == id {
			return ev
		}
	}
}

func planID(ev sseEvent) string {
	if p, ok := ev.data["plan"].(map[string]any); ok {
		s, _ := p["id"].(string)
		return s
	}
	return ""
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
