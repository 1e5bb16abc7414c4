package marathon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// sseServer is Marathon's /v2/events: 405 unless Accept is exactly
// text/event-stream, then the frames that script writes for connection n
// (1, 2, …). The stream ends when script returns.
type sseServer struct {
	t          *testing.T
	authorized func(*http.Request) bool
	script     func(n int, w *sseWriter, r *http.Request)

	mu      sync.Mutex
	conns   int
	queries [][]string
	accepts [][]string
}

type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (s *sseWriter) raw(frame string) {
	_, _ = io.WriteString(s.w, frame)
	s.f.Flush()
}

// event writes a frame the way Marathon does, with CRLF line ends.
func (s *sseWriter) event(typ, data string) {
	s.raw("event: " + typ + "\r\ndata: " + data + "\r\n\r\n")
}

func (s *sseWriter) attached(n int) {
	s.event(EventStreamAttached, fmt.Sprintf(`{"remoteAddress":"127.0.0.1","eventType":"event_stream_attached","timestamp":"conn-%d"}`, n))
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/events" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if s.authorized != nil && !s.authorized(r) {
		message(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	s.mu.Lock()
	s.conns++
	n := s.conns
	s.queries = append(s.queries, r.URL.Query()["event_type"])
	s.accepts = append(s.accepts, r.Header.Values("Accept"))
	s.mu.Unlock()
	if r.Header.Get("Accept") != "text/event-stream" {
		message(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, f: w.(http.Flusher)}
	sw.f.Flush()
	s.script(n, sw, r)
}

func (s *sseServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// follow starts Events and returns a function that takes the next event
// (failing the test after a deadline) and a stop that cancels and waits for
// the channel to close.
func follow(t *testing.T, c *Client, types ...string) (next func() Event, stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	ch := c.Events(ctx, types...)
	next = func() Event {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("event channel closed")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
		return Event{}
	}
	stop = func() {
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Error("event channel not closed 10s after cancel")
				return
			}
		}
	}
	t.Cleanup(stop)
	return next, stop
}

func sseClient(t *testing.T, s *sseServer, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New("ev", config.Marathon{URL: srv.URL},
		append([]Option{WithLogger(testLogger(t)), WithReconnectBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEventsFiltersAndParsesFrames(t *testing.T) {
	s := &sseServer{t: t, script: func(n int, w *sseWriter, r *http.Request) {
		w.attached(n)
		w.raw("\r\n") // heartbeat
		w.event("status_update_event", `{"taskId":"x"}`)
		w.raw("event: deployment_success\ndata: {\"id\":\"d1\",\"plan\":{\"id\":\"d1\",\"version\":\"v1\"}}\n\n")
		w.raw(": comment\n\nevent: deployment_failed\r\ndata: {\"id\":\"d2\",\r\ndata: \"plan\":{\"id\":\"d2\"},\"reason\":\"r\"}\r\n\r\n")
		<-r.Context().Done()
	}}
	c := sseClient(t, s)
	next, stop := follow(t, c, "deployment_success", "deployment_failed")

	if ev := next(); ev.Type != EventStreamAttached {
		t.Fatalf("first event = %s", ev.Type)
	}
	ev := next()
	d, err := ev.Deployment()
	if ev.Type != "deployment_success" || err != nil || d.ID != "d1" || d.Plan.Version != "v1" {
		t.Fatalf("event = %s %s (%v)", ev.Type, ev.Data, err)
	}
	ev = next()
	d, err = ev.Deployment()
	if ev.Type != "deployment_failed" || err != nil || d.ID != "d2" || d.Reason != "r" {
		t.Fatalf("event = %s %s (%v)", ev.Type, ev.Data, err)
	}
	stop()

	s.mu.Lock()
	defer s.mu.Unlock()
	if want := []string{"deployment_success", "deployment_failed", EventStreamAttached}; !slices.Equal(s.queries[0], want) {
		t.Errorf("event_type = %q, want %q", s.queries[0], want)
	}
	if !slices.Equal(s.accepts[0], []string{"text/event-stream"}) {
		t.Errorf("Accept = %q", s.accepts[0])
	}
}

func TestEventsWithoutFilterPassEverything(t *testing.T) {
	s := &sseServer{t: t, script: func(n int, w *sseWriter, r *http.Request) {
		w.attached(n)
		w.event("status_update_event", `{"taskId":"x"}`)
		<-r.Context().Done()
	}}
	next, stop := follow(t, sseClient(t, s))
	next()
	if ev := next(); ev.Type != "status_update_event" {
		t.Fatalf("event = %s", ev.Type)
	}
	stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queries[0]; len(q) != 0 {
		t.Errorf("event_type = %q, want none", q)
	}
}

func TestEventsReconnectAfterTheStreamIsCut(t *testing.T) {
	s := &sseServer{t: t, script: func(n int, w *sseWriter, r *http.Request) {
		w.attached(n)
		if n == 1 {
			w.event("deployment_success", `{"id":"d1","plan":{"id":"d1"}}`)
			return // Marathon lost leadership: the stream ends
		}
		<-r.Context().Done()
	}}
	next, _ := follow(t, sseClient(t, s), "deployment_success")
	for i, want := range []string{"conn-1", "", "conn-2"} {
		ev := next()
		if want == "" {
			if ev.Type != "deployment_success" {
				t.Fatalf("event %d = %s", i, ev.Type)
			}
			continue
		}
		if ev.Type != EventStreamAttached || !contains(ev.Data, want) {
			t.Fatalf("event %d = %s %s, want attached of %s", i, ev.Type, ev.Data, want)
		}
	}
}

func TestEventsReconnectAfterAFailedConnect(t *testing.T) {
	var tries atomic.Int32
	s := &sseServer{t: t}
	s.authorized = func(*http.Request) bool { return tries.Add(1) > 1 } // refuse the first try
	s.script = func(n int, w *sseWriter, r *http.Request) {
		w.attached(n)
		<-r.Context().Done()
	}
	next, _ := follow(t, sseClient(t, s))
	if ev := next(); ev.Type != EventStreamAttached {
		t.Fatalf("event = %s", ev.Type)
	}
	if n := tries.Load(); n != 2 {
		t.Errorf("%d tries, want 2", n)
	}
}

func TestEventsReconnectWhenHeartbeatsStop(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := &sseServer{t: t, script: func(n int, w *sseWriter, r *http.Request) {
		w.attached(n)
		if n == 1 {
			<-r.Context().Done() // silent: no heartbeats
			return
		}
		// Heartbeats well within the timeout keep the stream alive for
		// several timeouts; then an event proves no reconnect happened.
		tick := time.NewTicker(timeout / 5)
		defer tick.Stop()
		for i := 0; i < 15; i++ {
			select {
			case <-tick.C:
				w.raw("\r\n")
			case <-r.Context().Done():
				return
			}
		}
		w.event("deployment_info", `{"plan":{"id":"d9"}}`)
		<-r.Context().Done()
	}}
	next, _ := follow(t, sseClient(t, s, WithHeartbeatTimeout(timeout)), "deployment_info")
	start := time.Now()
	if ev := next(); !contains(ev.Data, "conn-1") {
		t.Fatalf("event = %s", ev.Data)
	}
	if ev := next(); ev.Type != EventStreamAttached || !contains(ev.Data, "conn-2") {
		t.Fatalf("event = %s %s", ev.Type, ev.Data)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("reconnected after %v, before the heartbeat timeout", d)
	}
	if ev := next(); ev.Type != "deployment_info" {
		t.Fatalf("event = %s", ev.Type)
	}
	if n := s.connections(); n != 2 {
		t.Errorf("%d connections: a stream with heartbeats was dropped", n)
	}
}

func TestEventsUseTheClusterPrefixAndCredentials(t *testing.T) {
	s := &sseServer{t: t, script: func(n int, w *sseWriter, r *http.Request) {
		w.attached(n)
		<-r.Context().Done()
	}}
	s.authorized = func(r *http.Request) bool { return r.Header.Get("Authorization") == "token=tok" }
	mux := http.NewServeMux()
	mux.Handle("/service/marathon/", http.StripPrefix("/service/marathon", s))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// A client-wide timeout shorter than the test must not cut the stream.
	c, err := New("ev", config.Marathon{URL: srv.URL + "/service/marathon/", Auth: config.MarathonAuth{Token: "tok"}},
		WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}), WithLogger(testLogger(t)),
		WithReconnectBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	next, _ := follow(t, c)
	next()
	// Watch the stream for four times the client's timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	<-ctx.Done()
	if n := s.connections(); n != 1 {
		t.Errorf("%d connections: the HTTP client's timeout cut the stream", n)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
