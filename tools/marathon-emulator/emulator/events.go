package emulator

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// subscriber is an SSE connection or an in-process Subscribe call.
type subscriber struct {
	types map[string]bool // empty: every type
	ch    chan Event
	done  chan struct{} // closed when the bus drops the subscriber
	once  sync.Once
}

func (s *subscriber) wants(typ string) bool { return len(s.types) == 0 || s.types[typ] }

func (s *subscriber) drop() {
	s.once.Do(func() {
		close(s.done)
		close(s.ch)
	})
}

// bus fans events out. Publishing never blocks: like Marathon's
// HttpEventStreamHandleActor, a subscriber whose buffer is full is dropped
// rather than slowing the emitter down.
type bus struct {
	mu       sync.Mutex
	subs     map[*subscriber]bool
	shutdown bool // Emulator.Close: later subscribers start closed
}

func newBus() *bus { return &bus{subs: map[*subscriber]bool{}} }

func (b *bus) subscribe(types []string, buffer int) *subscriber {
	s := &subscriber{types: map[string]bool{}, ch: make(chan Event, buffer), done: make(chan struct{})}
	for _, t := range types {
		s.types[t] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shutdown {
		s.drop()
		return s
	}
	b.subs[s] = true
	return s
}

func (b *bus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
	s.drop()
}

// publish serialises the event once and hands it to every interested
// subscriber, in the caller's order.
func (b *bus) publish(typ string, payload any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var f Event
	for s := range b.subs {
		if f.Data == nil && s.wants(typ) {
			f = Event{Type: typ, Data: mustJSON(payload)}
		}
		if !s.wants(typ) {
			continue
		}
		select {
		case s.ch <- f:
		default:
			delete(b.subs, s)
			s.drop()
		}
	}
}

// closeAll drops every subscriber: SSE connections end, Subscribe
// channels close. With final set, later subscribers are dropped at once.
func (b *bus) closeAll(final bool) {
	b.mu.Lock()
	b.shutdown = b.shutdown || final
	subs := b.subs
	b.subs = map[*subscriber]bool{}
	b.mu.Unlock()
	for s := range subs {
		s.drop()
	}
}

// jettyMethodNotAllowed is what Jetty's EventSourceServlet answers (via
// HttpServlet.doGet) when no Accept header is exactly text/event-stream;
// the page is events.raml's documented 405 example.
const jettyMethodNotAllowed = `<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>
<title>Error 405 </title>
</head>
<body>
<h2>HTTP ERROR: 405</h2>
<p>Problem accessing /v2/events. Reason:
<pre>    HTTP method GET is not supported by this URL</pre></p>
<hr /><a href="http://eclipse.org/jetty">Powered by Jetty:// 9.3.z-SNAPSHOT</a><hr/>
</body>
</html>
`

// acceptsEventStream mirrors EventSourceServlet.doGet: some Accept header
// value must equal "text/event-stream" exactly; "text/event-stream, */*"
// or a parameter does not count.
func acceptsEventStream(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		if a == "text/event-stream" {
			return true
		}
	}
	return false
}

type eventStreamAttached struct {
	RemoteAddress string `json:"remoteAddress"`
	EventType     string `json:"eventType"`
	Timestamp     string `json:"timestamp"`
}

// serveEvents is GET /v2/events: HttpEventStreamServlet on Jetty's
// EventSourceServlet. Frames are "event: <type>\r\ndata: <json>\r\n\r\n",
// heartbeats a bare "\r\n" (EventSourceEmitter.run writes '\r', flushes,
// writes '\n', flushes), there are no id: lines and no replay.
func (e *Emulator) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !acceptsEventStream(r) {
		w.Header().Set("Content-Type", "text/html;charset=ISO-8859-1")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(jettyMethodNotAllowed))
		return
	}
	if e.faults.takeStreamRefusal() {
		writeAPIError(w, errMessage(http.StatusServiceUnavailable, "Event stream refused (injected fault)"))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeAPIError(w, errMessage(http.StatusInternalServerError, "streaming unsupported"))
		return
	}
	sub := e.bus.subscribe(r.URL.Query()["event_type"], 4096)
	defer e.bus.unsubscribe(sub)

	w.Header().Set("Content-Type", "text/event-stream;charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	// Marathon publishes event_stream_attached on the bus when the stream
	// opens, so the new stream (and every other one) receives it.
	e.bus.publish("event_stream_attached", eventStreamAttached{remote, "event_stream_attached", fmtTime(e.opts.Now())})
	defer e.bus.publish("event_stream_detached", eventStreamAttached{remote, "event_stream_detached", fmtTime(e.opts.Now())})

	heartbeat := time.NewTicker(e.opts.Heartbeat)
	defer heartbeat.Stop()
	buf := make([]byte, 0, 1024)
	for {
		select {
		case <-r.Context().Done():
			return
		case f, ok := <-sub.ch:
			if !ok {
				// Cut by a fault, by Close, or dropped as a slow reader.
				return
			}
			buf = append(buf[:0], "event: "...)
			buf = append(buf, f.Type...)
			buf = append(buf, "\r\ndata: "...)
			buf = append(buf, f.Data...)
			buf = append(buf, "\r\n\r\n"...)
			if _, err := w.Write(buf); err != nil {
				return
			}
			flusher.Flush()
		case <-heartbeat.C:
			if _, err := w.Write([]byte{'\r'}); err != nil {
				return
			}
			flusher.Flush()
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
