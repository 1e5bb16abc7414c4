package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Live stream tuning.
const (
	// clientBuffer is how many events a live stream may fall behind before
	// it is dropped: a browser reconnects at once with Last-Event-ID and
	// gets what it missed from the store, so dropping costs it nothing,
	// while a stalled connection can never hold the others back nor pile
	// up memory.
	clientBuffer = 64
	// heartbeat keeps proxies from closing an idle stream and lets the
	// console notice a browser that went away.
	heartbeat = 15 * time.Second
	// writeTimeout bounds one write to a stream: a connection that takes
	// no bytes for that long is gone.
	writeTimeout = 30 * time.Second
	// retryMillis is how long a browser waits before it reconnects.
	retryMillis = 2000
)

// frame is one event as every live stream sends it, serialized once and
// shared, never modified, by every stream that sends it.
type frame struct {
	seq uint64
	b   []byte
}

// streamClient is one open live stream.
type streamClient struct {
	match func(*stored) bool
	// ch carries the frames; the hub closes it when it drops the client
	// or stops.
	ch chan *frame
}

// hub fans the store's new events out to the live streams.
type hub struct {
	mu      sync.Mutex
	clients map[*streamClient]struct{}
	closed  bool
	// dropped counts the streams dropped for being slow (tests, metrics).
	dropped int
}

func newHub() *hub { return &hub{clients: map[*streamClient]struct{}{}} }

// subscribe registers a stream of the events that match; ok is false once
// the hub is closed.
func (h *hub) subscribe(match func(*stored) bool) (c *streamClient, ok bool) {
	c = &streamClient{match: match, ch: make(chan *frame, clientBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	h.clients[c] = struct{}{}
	return c, true
}

func (h *hub) unsubscribe(c *streamClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c.ch)
	}
}

// publish hands e to every stream that wants it, without ever waiting: a
// stream whose buffer is full is dropped. The frame is built once, for
// the first stream that wants it.
func (h *hub) publish(e *stored) {
	var f *frame
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if !c.match(e) {
			continue
		}
		if f == nil {
			f = newFrame(e)
		}
		select {
		case c.ch <- f:
		default:
			delete(h.clients, c)
			close(c.ch)
			h.dropped++
		}
	}
}

// close ends every stream (the console stops).
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		delete(h.clients, c)
		close(c.ch)
	}
}

// droppedStreams is how many streams were dropped for being slow.
func (h *hub) droppedStreams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// streams is how many live streams are open.
func (h *hub) streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// newFrame renders e as a server-sent event: its stream sequence as the
// id (what Last-Event-ID gives back) and its timeline row as the data (one
// line of JSON). It has no event name, so that a page's one "message"
// listener gets every type.
func newFrame(e *stored) *frame {
	row, err := json.Marshal(rowOf(e))
	if err != nil { // a row is strings, numbers and a time
		row = []byte(`{}`)
	}
	var b bytes.Buffer
	b.Grow(len(row) + 64)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(e.seq, 10))
	b.WriteString("\ndata: ")
	b.Write(row)
	b.WriteString("\n\n")
	return &frame{seq: e.seq, b: b.Bytes()}
}

// timelineStream serves GET /timeline/stream: the live events that match the
// query's filters (env, type, repository) among those the user may view.
// A browser that reconnects sends Last-Event-ID and first gets what it
// missed, from the recent events; a first connection may ask for the
// same with ?after=SEQ (the newest row of the page it came with). The
// stream ends when the user's session does.
func (s *server) timelineStream(c echo.Context) error {
	f, err := s.eventFilter(c)
	if err != nil {
		return err
	}
	u := s.user(c)
	visible := s.policy.Filter(u.Identity)
	match := func(e *stored) bool { return visible(e.env) && f.matches(e) }

	after, resume := uint64(0), false
	for _, v := range []string{c.Request().Header.Get("Last-Event-ID"), c.QueryParam("after")} {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && v != "" {
			after, resume = n, true
			break
		}
	}
	// Subscribe before reading the store, so that nothing falls between
	// the replay and the live events; the duplicates are skipped by
	// sequence.
	sc, ok := s.live.subscribe(match)
	if !ok {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the console is stopping")
	}
	defer s.live.unsubscribe(sc)

	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // a proxy must not hold the stream back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write([]byte("retry: " + strconv.Itoa(retryMillis) + "\n\n")); err != nil {
		return nil
	}
	sent := after
	if resume {
		for _, e := range s.recent.after(after, match) {
			if err := write(newFrame(e).b); err != nil {
				return nil
			}
			sent = e.seq
		}
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	// The stream ends with the session: the browser reconnects, gets 401
	// and the script sends it to the login, instead of a stream that
	// outlives the permissions it was opened with.
	var expired <-chan time.Time
	if !u.Expires.IsZero() {
		end := time.NewTimer(u.Expires.Sub(s.now()))
		defer end.Stop()
		expired = end.C
	}
	ctx := c.Request().Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-expired:
			return nil
		case fr, ok := <-sc.ch:
			if !ok {
				return nil // dropped for being slow, or the console stops
			}
			if fr.seq <= sent {
				continue
			}
			if err := write(fr.b); err != nil {
				return nil
			}
			sent = fr.seq
		case <-tick.C:
			if err := write([]byte(": heartbeat\n\n")); err != nil {
				return nil
			}
		}
	}
}
