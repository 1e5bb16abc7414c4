package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Slack stands in for the part of Slack's Web API a Slack receiver with a
// bot token uses (chat.postMessage, chat.update, conversations.history),
// so that the demo's notifier posts as it would to Slack: threaded per
// release, to the receiver's channel and to the channels of the apps'
// slipway.notify labels. It checks the bot token and the channels and
// hands every message a person would read to Posted. The tests use
// pkg/testkit's Slack, which also validates Block Kit.
type Slack struct {
	// APIURL is the Web API's base, a Slack receiver's apiUrl.
	APIURL string
	// Token is the bot token it accepts.
	Token string

	srv    *http.Server
	posted func(channel, text string)

	mu       sync.Mutex
	channels map[string]*slackChannel // by id
	seq      int64
}

type slackChannel struct {
	id, name string
	msgs     []slackMessage
}

type slackMessage struct {
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts,omitempty"`
	Text     string          `json:"text"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// StartSlack serves the stand-in on 127.0.0.1 with the named channels
// ("#web-team"). posted is called with the channel's name and the text of
// each message that is not a thread's parent (a parent repeats the
// release's latest status, which its reply says), in the order they are
// posted.
func StartSlack(token string, posted func(channel, text string), channels ...string) (*Slack, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Slack{
		APIURL:   "http://" + ln.Addr().String() + "/api",
		Token:    token,
		posted:   posted,
		channels: map[string]*slackChannel{},
	}
	for i, name := range channels {
		id := fmt.Sprintf("C%08d", i+1)
		s.channels[id] = &slackChannel{id: id, name: "#" + strings.TrimPrefix(name, "#")}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/chat.postMessage", s.api(s.postMessage))
	mux.HandleFunc("POST /api/chat.update", s.api(s.update))
	mux.HandleFunc("GET /api/conversations.history", s.api(s.history))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops serving.
func (s *Slack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
}

// api checks the token and answers as Slack does: HTTP 200 with
// {"ok":true,…} or {"ok":false,"error":code}.
func (s *Slack) api(method func(*http.Request, []byte) map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var out map[string]any
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		switch auth := r.Header.Get("Authorization"); {
		case err != nil:
			out = slackError("invalid_payload")
		case auth == "":
			out = slackError("not_authed")
		case auth != "Bearer "+s.Token:
			out = slackError("invalid_auth")
		default:
			out = method(r, body)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(out)
	}
}

func slackError(code string) map[string]any { return map[string]any{"ok": false, "error": code} }

type chatArgs struct {
	Channel  string          `json:"channel"`
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts"`
	Text     string          `json:"text"`
	Metadata json.RawMessage `json:"metadata"`
}

// channelLocked finds a channel by id, or by name with or without '#'.
func (s *Slack) channelLocked(ref string) *slackChannel {
	if c, ok := s.channels[ref]; ok {
		return c
	}
	for _, c := range s.channels {
		if c.name == "#"+strings.TrimPrefix(ref, "#") {
			return c
		}
	}
	return nil
}

func (s *Slack) postMessage(_ *http.Request, body []byte) map[string]any {
	var in chatArgs
	if json.Unmarshal(body, &in) != nil {
		return slackError("invalid_json")
	}
	if in.Text == "" {
		return slackError("no_text")
	}
	s.mu.Lock()
	c := s.channelLocked(in.Channel)
	if c == nil {
		s.mu.Unlock()
		return slackError("channel_not_found")
	}
	if in.ThreadTS != "" && c.find(in.ThreadTS) == nil {
		s.mu.Unlock()
		return slackError("thread_not_found")
	}
	s.seq++
	m := slackMessage{TS: fmt.Sprintf("%d.%06d", time.Now().Unix(), s.seq%1e6), ThreadTS: in.ThreadTS, Text: in.Text, Metadata: in.Metadata}
	c.msgs = append(c.msgs, m)
	parent := len(in.Metadata) > 0 && in.ThreadTS == ""
	// Posted is called under the lock, so that it sees the messages in
	// the order they were posted.
	if !parent && s.posted != nil {
		s.posted(c.name, in.Text)
	}
	s.mu.Unlock()
	return map[string]any{"ok": true, "channel": c.id, "ts": m.TS, "message": m}
}

func (s *Slack) update(_ *http.Request, body []byte) map[string]any {
	var in chatArgs
	if json.Unmarshal(body, &in) != nil {
		return slackError("invalid_json")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(in.Channel)
	if c == nil {
		return slackError("channel_not_found")
	}
	m := c.find(in.TS)
	if m == nil {
		return slackError("message_not_found")
	}
	m.Text = in.Text
	return map[string]any{"ok": true, "channel": c.id, "ts": m.TS}
}

// history lists a channel's top-level messages, newest first, with their
// metadata (a Slack receiver looks there for a thread's parent).
func (s *Slack) history(r *http.Request, _ []byte) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(r.URL.Query().Get("channel"))
	if c == nil {
		return slackError("channel_not_found")
	}
	msgs := []slackMessage{}
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].ThreadTS == "" {
			msgs = append(msgs, c.msgs[i])
		}
	}
	return map[string]any{"ok": true, "messages": msgs, "has_more": false}
}

func (c *slackChannel) find(ts string) *slackMessage {
	for i := range c.msgs {
		if c.msgs[i].TS == ts {
			return &c.msgs[i]
		}
	}
	return nil
}
