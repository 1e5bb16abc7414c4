package testkit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Identities of the fake Slack's bot user.
const (
	SlackBotUserID = "U0SLIPBOT"
	SlackBotID     = "B0SLIPBOT"
	SlackTeamID    = "T0SLIPWAY"
)

// Block Kit limits the fake enforces, as documented by Slack.
const (
	slackMaxBlocks         = 50
	slackMaxTextLen        = 3000
	slackMaxHeaderLen      = 150
	slackMaxFields         = 10
	slackMaxFieldLen       = 2000
	slackMaxContextElems   = 10
	slackMaxActionsElems   = 25
	slackMaxButtonTextLen  = 75
	slackMaxActionIDLen    = 255
	slackMaxBlockIDLen     = 255
	slackMaxButtonValueLen = 2000
	slackMaxURLLen         = 3000
	// slackResponseURLUses is how often one response_url may be used.
	slackResponseURLUses = 5
)

// Slack is a fake of the parts of Slack that Slipway uses, served by
// httptest on 127.0.0.1, checking what Slack checks:
//
//   - Web API (URL + "/api/<method>"): chat.postMessage and chat.update
//     (JSON bodies), conversations.history (query or form). Every call needs
//     "Authorization: Bearer <token>": none is answered not_authed, another
//     token invalid_auth — HTTP 200 with {"ok":false,"error":…}, as Slack
//     does. Channels are the ones given to NewSlack (by name, with or
//     without '#', or by id for chat.postMessage; by id only for
//     chat.update and conversations.history); another is channel_not_found.
//     Blocks are validated against Block Kit (block types section, header,
//     context, actions, divider; text objects; buttons; the documented
//     length and count limits; no unknown properties): invalid_blocks with
//     the reasons in response_metadata.messages. thread_ts must name a
//     message of the channel (thread_not_found); a reply's ts files the
//     message under that reply's parent, as Slack does.
//   - incoming webhooks (WebhookURL): {text, blocks} → 200 "ok"; 400
//     invalid_blocks / no_text / invalid_payload; 404 no_service.
//   - response_url (the URL Slack puts in an interaction payload, see
//     Interact): replace_original replaces the message, otherwise the
//     response is ephemeral, visible to the user who acted only (recorded,
//     see Responses). Each URL works five times, as Slack's.
//
// RateLimit makes the next calls answer HTTP 429 with Retry-After. The
// server is closed in t.Cleanup.
type Slack struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL string
	// APIURL is the Web API's base, URL + "/api" (a Slack receiver's
	// apiUrl).
	APIURL string
	// Token is the bot token the Web API demands.
	Token string

	mu         sync.Mutex
	channels   []*slackChannel
	seq        int64 // the last ts, in microseconds
	limited    int
	retryAfter int
	webhooks   map[string]string // webhook id → channel id
	responses  map[string]*slackResponseURL
	answered   []SlackResponse
	calls      []SlackCall
	srv        *httptest.Server
}

type slackChannel struct {
	id, name string
	msgs     []*slackMsg // in ts order
}

type slackMsg struct {
	channel, ts, threadTS string
	text                  string
	blocks                json.RawMessage // nil: none
	metadata              json.RawMessage
	via                   string
	edits                 []SlackEdit
}

type slackResponseURL struct {
	channel, ts, user string
	uses              int
}

// SlackMessage is a message as the fake Slack holds it.
type SlackMessage struct {
	// Channel is the channel's id.
	Channel string
	TS      string
	// ThreadTS is the parent's ts for a reply, "" for a top-level message.
	ThreadTS string
	Text     string
	// Blocks are the message's blocks as Slack stores them (every block
	// has a block_id).
	Blocks []map[string]any
	// Metadata is the message's metadata (event_type, event_payload), nil
	// without.
	Metadata map[string]any
	// Via is how it was posted: chat.postMessage or webhook.
	Via string
	// Edits are the earlier versions of the message, oldest first; Text
	// and Blocks are the current one.
	Edits []SlackEdit
}

// SlackEdit is an earlier version of a message, and how it was replaced
// (chat.update or response_url).
type SlackEdit struct {
	Text   string
	Blocks []map[string]any
	// ReplacedVia is what replaced this version.
	ReplacedVia string
}

// SlackButton is a button of an actions block.
type SlackButton struct {
	BlockID, ActionID, Value, Style, Text string
}

// SlackResponse is what an app posted to a response_url without replacing
// the message: an ephemeral message to the user who acted.
type SlackResponse struct {
	// User is the Slack user who acted (the only one who sees an
	// ephemeral response).
	User string
	// Channel and MessageTS are the message acted on.
	Channel, MessageTS string
	ResponseType       string
	Text               string
	Blocks             []map[string]any
}

// SlackCall is one request to the fake: the Web API method (or "webhook",
// "response_url") and its outcome, "ok" or Slack's error code.
type SlackCall struct {
	Method, Result string
}

// NewSlack starts a fake Slack whose Web API accepts token (a bot token,
// xoxb-…) and knows channels (names, "#deploys" or "deploys"); their ids
// are C0000001, C0000002, … in the order given.
func NewSlack(t testing.TB, token string, channels ...string) *Slack {
	t.Helper()
	s := &Slack{Token: token, webhooks: map[string]string{}, responses: map[string]*slackResponseURL{}}
	for i, name := range channels {
		s.channels = append(s.channels, &slackChannel{id: fmt.Sprintf("C%07d", i+1), name: strings.TrimPrefix(name, "#")})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/chat.postMessage", s.api(s.postMessage))
	mux.HandleFunc("POST /api/chat.update", s.api(s.update))
	mux.HandleFunc("GET /api/conversations.history", s.api(s.history))
	mux.HandleFunc("POST /api/conversations.history", s.api(s.history))
	mux.HandleFunc("POST /api/{method}", func(w http.ResponseWriter, r *http.Request) {
		s.record(r.PathValue("method"), "unknown_method")
		writeSlackJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "unknown_method"})
	})
	mux.HandleFunc("POST /services/{id}", s.webhook)
	mux.HandleFunc("POST /response/{id}", s.respond)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.APIURL = s.URL + "/api"
	return s
}

// RateLimit makes the next n calls (Web API and webhooks) answer HTTP 429
// with "Retry-After: retryAfter" (seconds), and, for the Web API, the body
// {"ok":false,"error":"ratelimited"}.
func (s *Slack) RateLimit(n, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited, s.retryAfter = n, retryAfter
}

// ChannelID returns the id of a channel given by name ("#deploys",
// "deploys") or id; it fails the test for an unknown one.
func (s *Slack) ChannelID(t testing.TB, channel string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channel(channel, true)
	if c == nil {
		t.Fatalf("testkit: fake Slack has no channel %q", channel)
	}
	return c.id
}

// WebhookURL creates an incoming webhook that posts to channel (a name or
// id) and returns its URL, URL + "/services/T…/B…/<secret>" in Slack's
// shape; it fails the test for an unknown channel.
func (s *Slack) WebhookURL(t testing.TB, channel string) string {
	t.Helper()
	id := s.ChannelID(t, channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	key := fmt.Sprintf("B%07d", len(s.webhooks)+1)
	s.webhooks[key] = id
	return s.URL + "/services/" + key
}

// Messages returns the messages of channel (a name or id), parents and
// replies, in ts order; nil for an unknown channel.
func (s *Slack) Messages(channel string) []SlackMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channel(channel, true)
	if c == nil {
		return nil
	}
	out := make([]SlackMessage, 0, len(c.msgs))
	for _, m := range c.msgs {
		out = append(out, m.export())
	}
	return out
}

// Parents returns the top-level messages of channel, in ts order.
func (s *Slack) Parents(channel string) []SlackMessage {
	var out []SlackMessage
	for _, m := range s.Messages(channel) {
		if m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// Replies returns the replies in the thread of parentTS, in ts order.
func (s *Slack) Replies(channel, parentTS string) []SlackMessage {
	var out []SlackMessage
	for _, m := range s.Messages(channel) {
		if m.ThreadTS == parentTS {
			out = append(out, m)
		}
	}
	return out
}

// Message returns one message by channel and ts.
func (s *Slack) Message(channel, ts string) (SlackMessage, bool) {
	for _, m := range s.Messages(channel) {
		if m.TS == ts {
			return m, true
		}
	}
	return SlackMessage{}, false
}

// Responses returns the ephemeral responses posted to response_urls, in
// order.
func (s *Slack) Responses() []SlackResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.answered)
}

// Calls returns every request so far with its outcome, in order.
func (s *Slack) Calls() []SlackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// PostMessage posts a message as the bot would through chat.postMessage
// (same checks), for tests that need a message to act on; it fails the
// test when Slack would refuse it. blocks is anything that marshals to a
// JSON array of blocks (nil: none).
func (s *Slack) PostMessage(t testing.TB, channel, text string, blocks any) SlackMessage {
	t.Helper()
	body := map[string]any{"channel": channel, "text": text}
	if blocks != nil {
		body["blocks"] = blocks
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := s.postMessage(raw)
	if out["ok"] != true {
		t.Fatalf("testkit: fake Slack refused the message: %v", out)
	}
	m, _ := s.Message(out["channel"].(string), out["ts"].(string))
	return m
}

// ---------------------------------------------------------------------------
// Interactions

// SlackSignature is Slack's request signature: "v0=" + hex(HMAC-SHA256(
// signingSecret, "v0:" + timestamp + ":" + body)).
func SlackSignature(signingSecret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte("v0:" + timestamp + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// InteractionBody is the form-encoded body ("payload=<JSON>") of the
// block_actions interaction Slack sends when user presses the button
// actionID (with value) on msg. Its response_url is this server's, bound to
// msg and user.
func (s *Slack) InteractionBody(user, actionID, value string, msg SlackMessage) []byte {
	blockID := ""
	for _, b := range msg.Buttons() {
		if b.ActionID == actionID {
			blockID = b.BlockID
		}
	}
	s.mu.Lock()
	id := fmt.Sprintf("R%07d", len(s.responses)+1)
	s.responses[id] = &slackResponseURL{channel: msg.Channel, ts: msg.TS, user: user}
	s.mu.Unlock()

	message := map[string]any{
		"type": "message", "user": SlackBotUserID, "bot_id": SlackBotID, "app_id": "A0SLIPWAY",
		"ts": msg.TS, "text": msg.Text, "blocks": msg.Blocks, "team": SlackTeamID,
	}
	if msg.ThreadTS != "" {
		message["thread_ts"] = msg.ThreadTS
	}
	payload := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": SlackTeamID},
		"api_app_id":   "A0SLIPWAY",
		"token":        "verification-token-deprecated",
		"container":    map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel, "is_ephemeral": false, "thread_ts": msg.ThreadTS},
		"trigger_id":   "1234567890.123456.abcdef",
		"team":         map[string]any{"id": SlackTeamID, "domain": "slipway"},
		"channel":      map[string]any{"id": msg.Channel, "name": s.channelName(msg.Channel)},
		"message":      message,
		"response_url": s.URL + "/response/" + id,
		"actions": []map[string]any{{
			"type": "button", "action_id": actionID, "block_id": blockID, "value": value,
			"text":      map[string]any{"type": "plain_text", "text": actionID, "emoji": true},
			"action_ts": "1700000000.000001",
		}},
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return []byte(url.Values{"payload": {string(raw)}}.Encode())
}

// Interact presses the button actionID (with value) of msg as Slack user
// and posts the block_actions interaction to interactionsURL (ingest's
// POST /slack/interactions, the full URL) signed with signingSecret as
// Slack signs, now. It returns the status and the body of the answer.
func (s *Slack) Interact(t testing.TB, interactionsURL, signingSecret, user, actionID, value string, msg SlackMessage) (int, string) {
	t.Helper()
	return SignedPost(t, interactionsURL, signingSecret, time.Now(), s.InteractionBody(user, actionID, value, msg))
}

// SignedPost posts a form-encoded body to url with Slack's signature
// headers for the time at (X-Slack-Request-Timestamp, X-Slack-Signature),
// and returns the status and body of the answer.
func SignedPost(t testing.TB, url, signingSecret string, at time.Time, body []byte) (int, string) {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", SlackSignature(signingSecret, ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

// ---------------------------------------------------------------------------
// Message helpers

// Buttons returns the buttons of the message's actions blocks.
func (m SlackMessage) Buttons() []SlackButton {
	var out []SlackButton
	for _, b := range m.Blocks {
		if b["type"] != "actions" {
			continue
		}
		blockID, _ := b["block_id"].(string)
		elems, _ := b["elements"].([]any)
		for _, e := range elems {
			el, _ := e.(map[string]any)
			if el["type"] != "button" {
				continue
			}
			btn := SlackButton{BlockID: blockID}
			btn.ActionID, _ = el["action_id"].(string)
			btn.Value, _ = el["value"].(string)
			btn.Style, _ = el["style"].(string)
			if txt, ok := el["text"].(map[string]any); ok {
				btn.Text, _ = txt["text"].(string)
			}
			out = append(out, btn)
		}
	}
	return out
}

// Content is the message's text and every text of its blocks, one per
// line, for assertions on what a reader sees.
func (m SlackMessage) Content() string {
	var b strings.Builder
	b.WriteString(m.Text)
	for _, blk := range m.Blocks {
		collectTexts(&b, blk)
	}
	return b.String()
}

// Markup returns the markup Slack acts on in the message's top-level text
// and its mrkdwn text objects (plain_text is never parsed): every <…>
// token, as written — mentions (<!channel>, <!here>, <@U…>, <#C…>,
// <!subteam^…>), links (<url> and <url|label>) and dates (<!date^…>).
// Text escaped as Slack asks (&lt; &gt; &amp;) holds none.
func (m SlackMessage) Markup() []string {
	texts := []string{m.Text}
	for _, blk := range m.Blocks {
		texts = collectMrkdwn(texts, blk)
	}
	var out []string
	for _, s := range texts {
		for {
			i := strings.IndexByte(s, '<')
			if i < 0 {
				break
			}
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				break
			}
			out = append(out, s[i:i+j+1])
			s = s[i+j+1:]
		}
	}
	return out
}

func collectMrkdwn(texts []string, v any) []string {
	switch v := v.(type) {
	case map[string]any:
		if v["type"] == "mrkdwn" {
			if s, ok := v["text"].(string); ok {
				texts = append(texts, s)
			}
			return texts
		}
		for _, e := range v {
			texts = collectMrkdwn(texts, e)
		}
	case []any:
		for _, e := range v {
			texts = collectMrkdwn(texts, e)
		}
	}
	return texts
}

func collectTexts(b *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		if t, ok := v["type"].(string); ok && (t == "mrkdwn" || t == "plain_text") {
			if s, ok := v["text"].(string); ok {
				b.WriteString("\n" + s)
				return
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			collectTexts(b, v[k])
		}
	case []any:
		for _, e := range v {
			collectTexts(b, e)
		}
	}
}

func (m *slackMsg) export() SlackMessage {
	out := SlackMessage{
		Channel: m.channel, TS: m.ts, ThreadTS: m.threadTS, Text: m.text,
		Blocks: decodeBlocks(m.blocks), Via: m.via, Edits: slices.Clone(m.edits),
	}
	if m.metadata != nil {
		_ = json.Unmarshal(m.metadata, &out.Metadata)
	}
	return out
}

func decodeBlocks(raw json.RawMessage) []map[string]any {
	if raw == nil {
		return nil
	}
	var out []map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// ---------------------------------------------------------------------------
// Web API

// apiMethod handles one Web API call's body and returns Slack's answer and
// the HTTP status.
type apiMethod func(body []byte) (map[string]any, int)

// api wraps a method with what every Web API call goes through: the rate
// limit, the bearer token, reading the body.
func (s *Slack) api(m apiMethod) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		if after, ok := s.takeRateLimit(); ok {
			s.record(method, "ratelimited")
			w.Header().Set("Retry-After", strconv.Itoa(after))
			writeSlackJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
			return
		}
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		switch {
		case r.Header.Get("Authorization") == "" || !strings.EqualFold(scheme, "Bearer") || token == "":
			s.record(method, "not_authed")
			writeSlackJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
			return
		case !hmac.Equal([]byte(token), []byte(s.Token)):
			s.record(method, "invalid_auth")
			writeSlackJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			s.record(method, "request_timeout")
			writeSlackJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "request_timeout"})
			return
		}
		if r.Method == http.MethodGet {
			body = []byte(r.URL.RawQuery)
		} else if method != "conversations.history" {
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if mt != "application/json" {
				s.record(method, "invalid_form_data")
				writeSlackJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_form_data"})
				return
			}
		}
		out, code := m(body)
		if out["ok"] == true {
			s.record(method, "ok")
		} else {
			s.record(method, fmt.Sprint(out["error"]))
		}
		writeSlackJSON(w, code, out)
	}
}

func (s *Slack) takeRateLimit() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limited <= 0 {
		return 0, false
	}
	s.limited--
	return s.retryAfter, true
}

func (s *Slack) record(method, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, SlackCall{Method: method, Result: result})
}

func writeSlackJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func slackError(code string, messages ...string) (map[string]any, int) {
	out := map[string]any{"ok": false, "error": code}
	if len(messages) > 0 {
		out["response_metadata"] = map[string]any{"messages": messages}
	}
	return out, http.StatusOK
}

// chatBody is the part of chat.postMessage's and chat.update's arguments
// the fake looks at; the rest is accepted and ignored, as Slack does.
type chatBody struct {
	Channel  string          `json:"channel"`
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts"`
	Text     *string         `json:"text"`
	Blocks   json.RawMessage `json:"blocks"`
	Metadata json.RawMessage `json:"metadata"`
}

func (s *Slack) postMessage(body []byte) (map[string]any, int) {
	var in chatBody
	if out, code, ok := decodeChat(body, &in); !ok {
		return out, code
	}
	blocks, problems := normalizeBlocks(in.Blocks)
	if problems != nil {
		return slackError("invalid_blocks", problems...)
	}
	text := ""
	if in.Text != nil {
		text = *in.Text
	}
	if text == "" && blocks == nil {
		return slackError("no_text")
	}
	meta, problems := checkMetadata(in.Metadata)
	if problems != nil {
		return slackError("invalid_metadata_format", problems...)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channel(in.Channel, true)
	if c == nil {
		return slackError("channel_not_found")
	}
	threadTS := ""
	if in.ThreadTS != "" {
		parent := c.find(in.ThreadTS)
		if parent == nil {
			return slackError("thread_not_found")
		}
		threadTS = parent.ts
		if parent.threadTS != "" {
			threadTS = parent.threadTS // a reply's ts: the same thread
		}
	}
	m := &slackMsg{channel: c.id, ts: s.nextTS(), threadTS: threadTS, text: text, blocks: blocks, metadata: meta, via: "chat.postMessage"}
	c.msgs = append(c.msgs, m)
	return map[string]any{"ok": true, "channel": c.id, "ts": m.ts, "message": m.apiJSON(true)}, http.StatusOK
}

func (s *Slack) update(body []byte) (map[string]any, int) {
	var in chatBody
	if out, code, ok := decodeChat(body, &in); !ok {
		return out, code
	}
	blocks, problems := normalizeBlocks(in.Blocks)
	if problems != nil {
		return slackError("invalid_blocks", problems...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channel(in.Channel, false) // chat.update takes the channel id only
	if c == nil {
		return slackError("channel_not_found")
	}
	m := c.find(in.TS)
	if m == nil {
		return slackError("message_not_found")
	}
	if in.Text == nil && in.Blocks == nil {
		return slackError("no_text")
	}
	text := m.text
	if in.Text != nil {
		text = *in.Text
	}
	if in.Blocks != nil {
		// Slack keeps the blocks when none are given, and removes them for
		// an empty array.
		if string(blocks) == "[]" {
			blocks = nil
		}
	} else {
		blocks = m.blocks
	}
	if text == "" && blocks == nil {
		return slackError("no_text")
	}
	m.replace(text, blocks, "chat.update")
	return map[string]any{"ok": true, "channel": c.id, "ts": m.ts, "text": m.text, "message": m.apiJSON(true)}, http.StatusOK
}

func (s *Slack) history(body []byte) (map[string]any, int) {
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return slackError("invalid_arguments")
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 {
			return slackError("invalid_limit")
		}
		limit = min(limit, 999)
	}
	start := 0
	if cur := q.Get("cursor"); cur != "" {
		if start, err = strconv.Atoi(strings.TrimPrefix(cur, "c")); err != nil || start < 0 {
			return slackError("invalid_cursor")
		}
	}
	inclusive := q.Get("inclusive") == "true" || q.Get("inclusive") == "1"
	withMeta := q.Get("include_all_metadata") == "true" || q.Get("include_all_metadata") == "1"
	oldest, latest := q.Get("oldest"), q.Get("latest")
	for _, ts := range []string{oldest, latest} {
		if ts != "" {
			if _, _, ok := parseTS(ts); !ok {
				return slackError("invalid_ts_oldest")
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channel(q.Get("channel"), false)
	if c == nil {
		return slackError("channel_not_found")
	}
	var top []*slackMsg // newest first, as Slack answers
	for i := len(c.msgs) - 1; i >= 0; i-- {
		m := c.msgs[i]
		if m.threadTS != "" {
			continue
		}
		if oldest != "" && (tsLess(m.ts, oldest) || (!inclusive && m.ts == oldest)) {
			continue
		}
		if latest != "" && (tsLess(latest, m.ts) || (!inclusive && m.ts == latest)) {
			continue
		}
		top = append(top, m)
	}
	var page []map[string]any
	end := min(start+limit, len(top))
	for _, m := range top[min(start, len(top)):end] {
		j := m.apiJSON(withMeta)
		if n := c.replyCount(m.ts); n > 0 {
			j["thread_ts"], j["reply_count"] = m.ts, n
		}
		page = append(page, j)
	}
	next := ""
	if end < len(top) {
		next = "c" + strconv.Itoa(end)
	}
	return map[string]any{
		"ok": true, "messages": page, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next},
	}, http.StatusOK
}

func decodeChat(body []byte, in *chatBody) (map[string]any, int, bool) {
	var probe any
	if err := json.Unmarshal(body, &probe); err != nil {
		out, code := slackError("invalid_json")
		return out, code, false
	}
	if _, ok := probe.(map[string]any); !ok {
		out, code := slackError("json_not_object")
		return out, code, false
	}
	if err := json.Unmarshal(body, in); err != nil {
		out, code := slackError("invalid_arguments", "[ERROR] "+err.Error())
		return out, code, false
	}
	return nil, 0, true
}

func (m *slackMsg) replace(text string, blocks json.RawMessage, via string) {
	m.edits = append(m.edits, SlackEdit{Text: m.text, Blocks: decodeBlocks(m.blocks), ReplacedVia: via})
	m.text, m.blocks = text, blocks
}

func (m *slackMsg) apiJSON(withMeta bool) map[string]any {
	j := map[string]any{
		"type": "message", "subtype": "bot_message", "user": SlackBotUserID, "bot_id": SlackBotID,
		"team": SlackTeamID, "text": m.text, "ts": m.ts,
	}
	if m.blocks != nil {
		j["blocks"] = decodeBlocks(m.blocks)
	}
	if m.threadTS != "" {
		j["thread_ts"] = m.threadTS
	}
	if withMeta && m.metadata != nil {
		var md any
		_ = json.Unmarshal(m.metadata, &md)
		j["metadata"] = md
	}
	if len(m.edits) > 0 {
		j["edited"] = map[string]any{"user": SlackBotUserID, "ts": m.ts}
	}
	return j
}

// channel finds a channel by id, or (byName) by name with or without '#'.
// The caller holds s.mu.
func (s *Slack) channel(ref string, byName bool) *slackChannel {
	for _, c := range s.channels {
		if c.id == ref || (byName && c.name == strings.TrimPrefix(ref, "#") && ref != "") {
			return c
		}
	}
	return nil
}

func (s *Slack) channelName(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channel(id, false); c != nil {
		return c.name
	}
	return ""
}

func (c *slackChannel) find(ts string) *slackMsg {
	for _, m := range c.msgs {
		if m.ts == ts {
			return m
		}
	}
	return nil
}

func (c *slackChannel) replyCount(ts string) int {
	n := 0
	for _, m := range c.msgs {
		if m.threadTS == ts {
			n++
		}
	}
	return n
}

// nextTS returns the next message ts: the time now in Slack's form,
// "1700000000.000100" (seconds, microseconds), strictly increasing. The
// caller holds s.mu.
func (s *Slack) nextTS() string {
	s.seq = max(s.seq+1, time.Now().UnixMicro())
	return fmt.Sprintf("%d.%06d", s.seq/1000000, s.seq%1000000)
}

func parseTS(ts string) (sec, micro int64, ok bool) {
	a, b, _ := strings.Cut(ts, ".")
	sec, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if b != "" {
		if len(b) > 6 {
			return 0, 0, false
		}
		b += strings.Repeat("0", 6-len(b))
		if micro, err = strconv.ParseInt(b, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return sec, micro, true
}

func tsLess(a, b string) bool {
	as, am, _ := parseTS(a)
	bs, bm, _ := parseTS(b)
	return as < bs || (as == bs && am < bm)
}

// ---------------------------------------------------------------------------
// Incoming webhooks and response_url

type webhookBody struct {
	Text   *string         `json:"text"`
	Blocks json.RawMessage `json:"blocks"`
}

func (s *Slack) webhook(w http.ResponseWriter, r *http.Request) {
	plain := func(code int, text string) {
		s.record("webhook", text)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, text)
	}
	if after, ok := s.takeRateLimit(); ok {
		w.Header().Set("Retry-After", strconv.Itoa(after))
		plain(http.StatusTooManyRequests, "rate_limited")
		return
	}
	s.mu.Lock()
	channel, ok := s.webhooks[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		plain(http.StatusNotFound, "no_service")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		plain(http.StatusBadRequest, "invalid_payload")
		return
	}
	var in webhookBody
	if err := json.Unmarshal(body, &in); err != nil {
		plain(http.StatusBadRequest, "invalid_payload")
		return
	}
	blocks, problems := normalizeBlocks(in.Blocks)
	if problems != nil {
		plain(http.StatusBadRequest, "invalid_blocks")
		return
	}
	text := ""
	if in.Text != nil {
		text = *in.Text
	}
	if text == "" && blocks == nil {
		plain(http.StatusBadRequest, "no_text")
		return
	}
	s.mu.Lock()
	c := s.channel(channel, false)
	c.msgs = append(c.msgs, &slackMsg{channel: c.id, ts: s.nextTS(), text: text, blocks: blocks, via: "webhook"})
	s.mu.Unlock()
	plain(http.StatusOK, "ok")
}

type responseBody struct {
	Text            *string         `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	ReplaceOriginal bool            `json:"replace_original"`
	DeleteOriginal  bool            `json:"delete_original"`
	ResponseType    string          `json:"response_type"`
}

func (s *Slack) respond(w http.ResponseWriter, r *http.Request) {
	answer := func(code int, result string) {
		s.record("response_url", result)
		if result == "ok" {
			writeSlackJSON(w, code, map[string]any{"ok": true})
			return
		}
		writeSlackJSON(w, code, map[string]any{"ok": false, "error": result})
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		answer(http.StatusBadRequest, "invalid_payload")
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var in responseBody
	if mt != "application/json" || json.Unmarshal(body, &in) != nil {
		answer(http.StatusBadRequest, "invalid_payload")
		return
	}
	blocks, problems := normalizeBlocks(in.Blocks)
	if problems != nil {
		answer(http.StatusBadRequest, "invalid_blocks")
		return
	}
	text := ""
	if in.Text != nil {
		text = *in.Text
	}
	if !in.DeleteOriginal && text == "" && blocks == nil {
		answer(http.StatusBadRequest, "no_text")
		return
	}
	switch in.ResponseType {
	case "", "ephemeral", "in_channel":
	default:
		answer(http.StatusBadRequest, "invalid_response_type")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ru, ok := s.responses[r.PathValue("id")]
	if !ok {
		s.calls = append(s.calls, SlackCall{Method: "response_url", Result: "expired_url"})
		writeSlackJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "expired_url"})
		return
	}
	if ru.uses >= slackResponseURLUses {
		s.calls = append(s.calls, SlackCall{Method: "response_url", Result: "used_url"})
		writeSlackJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "used_url"})
		return
	}
	ru.uses++
	c := s.channel(ru.channel, false)
	var m *slackMsg
	if c != nil {
		m = c.find(ru.ts)
	}
	switch {
	case in.DeleteOriginal || in.ReplaceOriginal:
		if m == nil {
			s.calls = append(s.calls, SlackCall{Method: "response_url", Result: "message_not_found"})
			writeSlackJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "message_not_found"})
			return
		}
		if in.DeleteOriginal {
			c.msgs = slices.DeleteFunc(c.msgs, func(x *slackMsg) bool { return x == m })
		} else {
			m.replace(text, blocks, "response_url")
		}
	case in.ResponseType == "in_channel":
		c.msgs = append(c.msgs, &slackMsg{channel: c.id, ts: s.nextTS(), threadTS: threadOf(m), text: text, blocks: blocks, via: "response_url"})
	default:
		s.answered = append(s.answered, SlackResponse{
			User: ru.user, Channel: ru.channel, MessageTS: ru.ts, ResponseType: "ephemeral",
			Text: text, Blocks: decodeBlocks(blocks),
		})
	}
	s.calls = append(s.calls, SlackCall{Method: "response_url", Result: "ok"})
	writeSlackJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func threadOf(m *slackMsg) string {
	if m == nil {
		return ""
	}
	return m.threadTS
}

// ---------------------------------------------------------------------------
// Block Kit validation

// normalizeBlocks validates a blocks argument (a JSON array, or a string
// holding one, as Slack accepts both) and returns it re-encoded with a
// block_id on every block, as Slack stores it; nil for none (absent or
// null). problems are Slack's response_metadata messages when it is
// invalid.
func normalizeBlocks(raw json.RawMessage) (json.RawMessage, []string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, []string{"[ERROR] invalid JSON string [json-pointer:/blocks]"}
		}
		raw = json.RawMessage(s)
	}
	var blocks []any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, []string{"[ERROR] must be an array of blocks [json-pointer:/blocks]"}
	}
	v := &blockValidator{ids: map[string]bool{}}
	v.blocks(blocks)
	if len(v.problems) > 0 {
		return nil, v.problems
	}
	for i, b := range blocks {
		bm := b.(map[string]any)
		if _, ok := bm["block_id"]; !ok {
			bm["block_id"] = fmt.Sprintf("b%03d", i)
		}
	}
	out, _ := json.Marshal(blocks)
	return out, nil
}

type blockValidator struct {
	problems []string
	ids      map[string]bool
}

func (v *blockValidator) fail(ptr, format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf("[ERROR] "+format+" [json-pointer:%s]", append(args, ptr)...))
}

func (v *blockValidator) blocks(blocks []any) {
	if len(blocks) > slackMaxBlocks {
		v.fail("/blocks", "no more than %d items allowed", slackMaxBlocks)
	}
	for i, b := range blocks {
		ptr := fmt.Sprintf("/blocks/%d", i)
		bm, ok := b.(map[string]any)
		if !ok {
			v.fail(ptr, "must be an object")
			continue
		}
		if id, ok := bm["block_id"]; ok {
			s, isStr := id.(string)
			switch {
			case !isStr || s == "":
				v.fail(ptr+"/block_id", "must be a non-empty string")
			case utf8.RuneCountInString(s) > slackMaxBlockIDLen:
				v.fail(ptr+"/block_id", "must be less than %d characters", slackMaxBlockIDLen+1)
			case v.ids[s]:
				v.fail(ptr+"/block_id", "duplicate block_id %q", s)
			default:
				v.ids[s] = true
			}
		}
		typ, _ := bm["type"].(string)
		switch typ {
		case "section":
			v.keys(ptr, bm, "type", "block_id", "text", "fields", "accessory")
			_, hasText := bm["text"]
			fields, hasFields := bm["fields"]
			if !hasText && !hasFields {
				v.fail(ptr, "must provide either text or fields")
			}
			if hasText {
				v.text(ptr+"/text", bm["text"], "", slackMaxTextLen)
			}
			if hasFields {
				fs, ok := fields.([]any)
				if !ok || len(fs) == 0 || len(fs) > slackMaxFields {
					v.fail(ptr+"/fields", "must be an array of 1 to %d text objects", slackMaxFields)
				}
				for j, f := range fs {
					v.text(fmt.Sprintf("%s/fields/%d", ptr, j), f, "", slackMaxFieldLen)
				}
			}
			if acc, ok := bm["accessory"]; ok {
				v.element(ptr+"/accessory", acc, "button", "image")
			}
		case "header":
			v.keys(ptr, bm, "type", "block_id", "text")
			v.text(ptr+"/text", bm["text"], "plain_text", slackMaxHeaderLen)
		case "context":
			v.keys(ptr, bm, "type", "block_id", "elements")
			els, ok := bm["elements"].([]any)
			if !ok || len(els) == 0 || len(els) > slackMaxContextElems {
				v.fail(ptr+"/elements", "must be an array of 1 to %d elements", slackMaxContextElems)
			}
			for j, e := range els {
				v.element(fmt.Sprintf("%s/elements/%d", ptr, j), e, "mrkdwn", "plain_text", "image")
			}
		case "actions":
			v.keys(ptr, bm, "type", "block_id", "elements")
			els, ok := bm["elements"].([]any)
			if !ok || len(els) == 0 || len(els) > slackMaxActionsElems {
				v.fail(ptr+"/elements", "must be an array of 1 to %d elements", slackMaxActionsElems)
			}
			actionIDs := map[string]bool{}
			for j, e := range els {
				p := fmt.Sprintf("%s/elements/%d", ptr, j)
				v.element(p, e, "button")
				if em, ok := e.(map[string]any); ok {
					if id, ok := em["action_id"].(string); ok {
						if actionIDs[id] {
							v.fail(p+"/action_id", "duplicate action_id %q", id)
						}
						actionIDs[id] = true
					}
				}
			}
		case "divider":
			v.keys(ptr, bm, "type", "block_id")
		case "":
			v.fail(ptr+"/type", "missing required field: type")
		default:
			v.fail(ptr+"/type", "unsupported type: %s", typ)
		}
	}
}

// keys fails for every property of m not in allowed.
func (v *blockValidator) keys(ptr string, m map[string]any, allowed ...string) {
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		v.fail(ptr+"/"+k, "unsupported property: %s", k)
	}
}

// text checks a text object; want is "" for either kind, or the one kind
// allowed.
func (v *blockValidator) text(ptr string, t any, want string, maxLen int) {
	tm, ok := t.(map[string]any)
	if !ok {
		v.fail(ptr, "must be a text object")
		return
	}
	typ, _ := tm["type"].(string)
	switch {
	case typ == "plain_text":
		v.keys(ptr, tm, "type", "text", "emoji")
		if e, ok := tm["emoji"]; ok {
			if _, isBool := e.(bool); !isBool {
				v.fail(ptr+"/emoji", "must be a boolean")
			}
		}
	case typ == "mrkdwn":
		v.keys(ptr, tm, "type", "text", "verbatim")
		if e, ok := tm["verbatim"]; ok {
			if _, isBool := e.(bool); !isBool {
				v.fail(ptr+"/verbatim", "must be a boolean")
			}
		}
	default:
		v.fail(ptr+"/type", "must be one of: mrkdwn, plain_text")
		return
	}
	if want != "" && typ != want {
		v.fail(ptr+"/type", "must be %s", want)
	}
	s, ok := tm["text"].(string)
	switch {
	case !ok || s == "":
		v.fail(ptr+"/text", "must be a non-empty string")
	case utf8.RuneCountInString(s) > maxLen:
		v.fail(ptr+"/text", "must be less than %d characters", maxLen+1)
	}
}

// element checks a block element of one of the kinds allowed.
func (v *blockValidator) element(ptr string, e any, allowed ...string) {
	em, ok := e.(map[string]any)
	if !ok {
		v.fail(ptr, "must be an object")
		return
	}
	typ, _ := em["type"].(string)
	if !slices.Contains(allowed, typ) {
		v.fail(ptr+"/type", "must be one of: %s", strings.Join(allowed, ", "))
		return
	}
	switch typ {
	case "mrkdwn", "plain_text":
		v.text(ptr, em, "", slackMaxTextLen)
	case "image":
		v.keys(ptr, em, "type", "image_url", "alt_text")
		if u, ok := em["image_url"].(string); !ok || u == "" {
			v.fail(ptr+"/image_url", "must be a non-empty string")
		}
		if a, ok := em["alt_text"].(string); !ok || a == "" {
			v.fail(ptr+"/alt_text", "must be a non-empty string")
		}
	case "button":
		v.keys(ptr, em, "type", "text", "action_id", "value", "style", "url", "accessibility_label")
		v.text(ptr+"/text", em["text"], "plain_text", slackMaxButtonTextLen)
		id, ok := em["action_id"].(string)
		_, hasURL := em["url"]
		switch {
		case !ok && !hasURL:
			v.fail(ptr+"/action_id", "must be a non-empty string") // Slipway's buttons are handled by action_id
		case ok && (id == "" || utf8.RuneCountInString(id) > slackMaxActionIDLen):
			v.fail(ptr+"/action_id", "must be 1 to %d characters", slackMaxActionIDLen)
		}
		if val, ok := em["value"]; ok {
			s, isStr := val.(string)
			if !isStr || utf8.RuneCountInString(s) > slackMaxButtonValueLen {
				v.fail(ptr+"/value", "must be a string of at most %d characters", slackMaxButtonValueLen)
			}
		}
		if st, ok := em["style"]; ok && st != "primary" && st != "danger" {
			v.fail(ptr+"/style", "must be one of: primary, danger")
		}
		if u, ok := em["url"]; ok {
			s, isStr := u.(string)
			if !isStr || s == "" || utf8.RuneCountInString(s) > slackMaxURLLen {
				v.fail(ptr+"/url", "must be a URL of at most %d characters", slackMaxURLLen)
			}
		}
	}
}

// checkMetadata validates chat.postMessage's metadata: {event_type,
// event_payload}.
func checkMetadata(raw json.RawMessage) (json.RawMessage, []string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var md map[string]any
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, []string{"[ERROR] metadata must be an object"}
	}
	if et, ok := md["event_type"].(string); !ok || et == "" {
		return nil, []string{"[ERROR] metadata.event_type must be a non-empty string"}
	}
	if _, ok := md["event_payload"].(map[string]any); !ok {
		return nil, []string{"[ERROR] metadata.event_payload must be an object"}
	}
	for k := range md {
		if k != "event_type" && k != "event_payload" {
			return nil, []string{"[ERROR] unsupported property metadata." + k}
		}
	}
	return raw, nil
}
