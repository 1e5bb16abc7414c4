package emulator

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// events.raml: "the client has to accept the text/event-stream content
// type", else 405 (Jetty's EventSourceServlet falls back to HttpServlet's
// doGet). EventSourceServlet compares each Accept header to
// "text/event-stream" exactly.
func TestEventStreamRequiresExactAccept(t *testing.T) {
	e := newEnv(t, Options{})
	for _, accept := range []string{"", "application/json", "*/*", "text/event-stream, */*", "text/event-stream;charset=utf-8"} {
		var r response
		if accept == "" {
			r = e.do("GET", "/v2/events", "")
		} else {
			r = e.do("GET", "/v2/events", "", "Accept", accept)
		}
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("Accept %q: status %d", accept, r.status)
		}
		if !strings.Contains(string(r.body), "HTTP method GET is not supported by this URL") {
			t.Errorf("Accept %q: body %s", accept, r.body)
		}
	}
	s := e.events("")
	if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
}

// event-bus.md: on connect Marathon sends event_stream_attached
// {"remoteAddress","eventType","timestamp"}; EventSourceEmitter frames
// are "event: <name>\r\ndata: <json>\r\n\r\n", with no id: lines.
func TestEventStreamAttachedAndFraming(t *testing.T) {
	e := newEnv(t, Options{})
	req, _ := http.NewRequest("GET", e.srv.URL+"/v2/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	var frame strings.Builder
	for !strings.HasSuffix(frame.String(), "\r\n\r\n") {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		frame.WriteString(line)
	}
	f := frame.String()
	if !strings.HasPrefix(f, "event: event_stream_attached\r\ndata: {\"remoteAddress\":\"127.0.0.1\",\"eventType\":\"event_stream_attached\",\"timestamp\":\"") {
		t.Errorf("frame %q", f)
	}
	if strings.Contains(f, "\nid:") || strings.Count(f, "\r\n") != 3 {
		t.Errorf("frame %q", f)
	}
}

// event-bus.md "Filtering the Event Stream": event_type may be repeated;
// only those types are sent (HttpEventSSEHandle.subscribed).
func TestEventStreamFilter(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.events("?event_type=deployment_success&event_type=app_terminated_event")
	dep := e.must(200, e.putImage("/dev/app1", "x:2", "")).json(t)["deploymentId"].(string)
	del := e.must(200, e.do("DELETE", "/v2/apps/dev/app2", "")).json(t)["deploymentId"].(string)
	seen := map[string]bool{}
	for len(seen) < 3 {
		ev := s.next()
		switch ev.typ {
		case "deployment_success":
			seen[ev.data["id"].(string)] = true
		case "app_terminated_event":
			seen["terminated"] = true
		default:
			t.Fatalf("filtered stream got %s", ev.typ)
		}
	}
	if !seen[dep] || !seen[del] {
		t.Errorf("seen %v", seen)
	}
}

// Jetty's EventSourceServlet heartbeat (EventSourceEmitter.run) writes
// "\r" and "\n" every heartBeatPeriod; Marathon keeps the default.
func TestEventStreamHeartbeat(t *testing.T) {
	e := newEnv(t, Options{Heartbeat: 10 * time.Millisecond})
	s := e.events("")
	var got string
	for i := 0; i < 2; i++ {
		b, err := s.rd.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		got += string(b)
	}
	if got != "\r\n" {
		t.Errorf("after the attached frame: %q, want a heartbeat", got)
	}
}

// Faults.CutEventStreams ends open streams (the client sees EOF);
// RefuseEventStreams makes the next connection attempts fail.
func TestEventStreamCutAndRefuse(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.events("")
	e.emu.Faults().CutEventStreams()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s.rd)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stream ended with %v, want a clean EOF", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("stream not cut")
	}

	e.emu.Faults().RefuseEventStreams(2)
	for i := 0; i < 2; i++ {
		e.must(503, e.do("GET", "/v2/events", "", "Accept", "text/event-stream"))
	}
	s = e.events("")
	e.must(200, e.putImage("/dev/app1", "x:2", ""))
	s.expect("deployment_success")
}

// Emulator.Subscribe gets the same events in-process.
func TestSubscribe(t *testing.T) {
	e := newEnv(t, Options{})
	ch, cancel := e.emu.Subscribe("deployment_success")
	defer cancel()
	dep := e.must(200, e.putImage("/dev/app1", "x:2", "")).json(t)["deploymentId"].(string)
	ctx, stop := context.WithTimeout(context.Background(), waitTimeout)
	defer stop()
	select {
	case ev := <-ch:
		if ev.Type != "deployment_success" || !strings.Contains(string(ev.Data), dep) {
			t.Errorf("event %s %s", ev.Type, ev.Data)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
}
