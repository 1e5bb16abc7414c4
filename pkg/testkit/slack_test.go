package testkit_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

const slackToken = "xoxb-test-token"

// slackCall posts a JSON body to a Web API method with auth ("" for none)
// and returns the status, the Retry-After header and the decoded answer.
func slackCall(t *testing.T, s *testkit.Slack, method, auth string, body any) (int, string, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.APIURL+"/"+method, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

func post(t *testing.T, s *testkit.Slack, body map[string]any) map[string]any {
	t.Helper()
	_, _, out := slackCall(t, s, "chat.postMessage", "Bearer "+slackToken, body)
	return out
}

func section(text string) map[string]any {
	return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}
}

func TestSlackWebAPIDemandsTheBotToken(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	msg := map[string]any{"channel": "#deploys", "text": "hi"}
	for _, c := range []struct{ auth, want string }{
		{"", "not_authed"},
		{"Bearer ", "not_authed"},
		{"Basic " + slackToken, "not_authed"},
		{"Bearer xoxb-other", "invalid_auth"},
	} {
		code, _, out := slackCall(t, s, "chat.postMessage", c.auth, msg)
		if code != http.StatusOK || out["ok"] != false || out["error"] != c.want {
			t.Errorf("auth %q: %d %v, want 200 %s", c.auth, code, out, c.want)
		}
	}
	out := post(t, s, msg)
	if out["ok"] != true || out["channel"] != "C0000001" || out["ts"] == "" {
		t.Fatalf("%v", out)
	}
	if m := out["message"].(map[string]any); m["text"] != "hi" || m["bot_id"] != testkit.SlackBotID {
		t.Errorf("message %v", m)
	}
	if n := len(s.Messages("#deploys")); n != 1 {
		t.Errorf("%d messages", n)
	}
}

func TestSlackChannels(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys", "payments")
	for _, ch := range []string{"#deploys", "deploys", "C0000001"} {
		if out := post(t, s, map[string]any{"channel": ch, "text": "x"}); out["channel"] != "C0000001" {
			t.Errorf("channel %q: %v", ch, out)
		}
	}
	if out := post(t, s, map[string]any{"channel": "#payments", "text": "x"}); out["channel"] != "C0000002" {
		t.Errorf("%v", out)
	}
	if out := post(t, s, map[string]any{"channel": "#nope", "text": "x"}); out["error"] != "channel_not_found" {
		t.Errorf("%v", out)
	}
	if out := post(t, s, map[string]any{"channel": "#deploys"}); out["error"] != "no_text" {
		t.Errorf("no text: %v", out)
	}
	// chat.update takes the channel's id only.
	ts := post(t, s, map[string]any{"channel": "#deploys", "text": "x"})["ts"]
	_, _, out := slackCall(t, s, "chat.update", "Bearer "+slackToken, map[string]any{"channel": "#deploys", "ts": ts, "text": "y"})
	if out["error"] != "channel_not_found" {
		t.Errorf("update by name: %v", out)
	}
	if got := s.ChannelID(t, "#payments"); got != "C0000002" {
		t.Errorf("ChannelID %q", got)
	}
}

func TestSlackBlockKitValidation(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	long := strings.Repeat("x", 3001)
	button := func(extra map[string]any) map[string]any {
		b := map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Approve"}, "action_id": "a", "value": "v"}
		for k, v := range extra {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	actions := func(els ...any) map[string]any { return map[string]any{"type": "actions", "elements": els} }
	var tooMany []any
	for range 51 {
		tooMany = append(tooMany, map[string]any{"type": "divider"})
	}
	var elevenFields []any
	for range 11 {
		elevenFields = append(elevenFields, map[string]any{"type": "mrkdwn", "text": "f"})
	}
	for _, c := range []struct {
		name   string
		blocks any
	}{
		{"unknown block type", []any{map[string]any{"type": "table"}}},
		{"no type", []any{map[string]any{"text": "x"}}},
		{"not an array", map[string]any{"type": "divider"}},
		{"text object of another type", []any{map[string]any{"type": "section", "text": map[string]any{"type": "markdown", "text": "x"}}}},
		{"text too long", []any{section(long)}},
		{"empty text", []any{section("")}},
		{"section without text or fields", []any{map[string]any{"type": "section"}}},
		{"eleven fields", []any{map[string]any{"type": "section", "fields": elevenFields}}},
		{"header in mrkdwn", []any{map[string]any{"type": "header", "text": map[string]any{"type": "mrkdwn", "text": "x"}}}},
		{"header too long", []any{map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": strings.Repeat("h", 151)}}}},
		{"unknown property", []any{map[string]any{"type": "divider", "color": "red"}}},
		{"emoji on mrkdwn", []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "x", "emoji": true}}}},
		{"duplicate block_id", []any{map[string]any{"type": "divider", "block_id": "a"}, map[string]any{"type": "divider", "block_id": "a"}}},
		{"51 blocks", tooMany},
		{"empty context", []any{map[string]any{"type": "context", "elements": []any{}}}},
		{"button without action_id", []any{actions(button(map[string]any{"action_id": nil}))}},
		{"button style", []any{actions(button(map[string]any{"style": "secondary"}))}},
		{"button text mrkdwn", []any{actions(button(map[string]any{"text": map[string]any{"type": "mrkdwn", "text": "x"}}))}},
		{"button text too long", []any{actions(button(map[string]any{"text": map[string]any{"type": "plain_text", "text": strings.Repeat("b", 76)}}))}},
		{"duplicate action_id", []any{actions(button(nil), button(nil))}},
		{"actions with a text", []any{actions(map[string]any{"type": "mrkdwn", "text": "x"})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := post(t, s, map[string]any{"channel": "#deploys", "text": "fallback", "blocks": c.blocks})
			if out["ok"] != false || out["error"] != "invalid_blocks" {
				t.Fatalf("%v, want invalid_blocks", out)
			}
		})
	}
	if n := len(s.Messages("#deploys")); n != 0 {
		t.Fatalf("%d invalid messages stored", n)
	}

	valid := []any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": "Release", "emoji": true}},
		section(strings.Repeat("x", 3000)),
		map[string]any{"type": "section", "fields": elevenFields[:10]},
		map[string]any{"type": "divider"},
		map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": "*prd*"}}},
		actions(button(map[string]any{"style": "primary"}), button(map[string]any{"action_id": "b", "style": "danger"})),
	}
	out := post(t, s, map[string]any{"channel": "#deploys", "blocks": valid})
	if out["ok"] != true {
		t.Fatalf("valid blocks refused: %v", out)
	}
	m := s.Messages("#deploys")[0]
	if len(m.Blocks) != 6 || m.Blocks[0]["block_id"] == nil {
		t.Errorf("stored blocks %v", m.Blocks)
	}
	if b := m.Buttons(); len(b) != 2 || b[0].ActionID != "a" || b[0].Style != "primary" || b[1].Style != "danger" || b[0].Text != "Approve" {
		t.Errorf("buttons %+v", b)
	}
	// Slack also accepts blocks as a JSON string.
	raw, _ := json.Marshal([]any{section("as a string")})
	if out := post(t, s, map[string]any{"channel": "#deploys", "blocks": string(raw)}); out["ok"] != true {
		t.Errorf("blocks as a string: %v", out)
	}
}

func TestSlackThreadsAndUpdates(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	parent := post(t, s, map[string]any{"channel": "#deploys", "text": "parent"})["ts"].(string)
	r1 := post(t, s, map[string]any{"channel": "#deploys", "text": "one", "thread_ts": parent})
	if r1["ok"] != true {
		t.Fatal(r1)
	}
	// A reply's ts puts the message in the same thread, as Slack does.
	post(t, s, map[string]any{"channel": "#deploys", "text": "two", "thread_ts": r1["ts"]})
	if out := post(t, s, map[string]any{"channel": "#deploys", "text": "x", "thread_ts": "1.000001"}); out["error"] != "thread_not_found" {
		t.Errorf("unknown thread: %v", out)
	}
	_, _, up := slackCall(t, s, "chat.update", "Bearer "+slackToken, map[string]any{"channel": "C0000001", "ts": parent, "text": "parent v2", "blocks": []any{section("v2")}})
	if up["ok"] != true || up["ts"] != parent {
		t.Fatal(up)
	}
	_, _, up = slackCall(t, s, "chat.update", "Bearer "+slackToken, map[string]any{"channel": "C0000001", "ts": parent, "text": "parent v3"})
	if up["ok"] != true {
		t.Fatal(up)
	}
	_, _, up = slackCall(t, s, "chat.update", "Bearer "+slackToken, map[string]any{"channel": "C0000001", "ts": "1.000001", "text": "x"})
	if up["error"] != "message_not_found" {
		t.Errorf("update unknown: %v", up)
	}

	parents := s.Parents("#deploys")
	if len(parents) != 1 || parents[0].TS != parent {
		t.Fatalf("parents %+v", parents)
	}
	p := parents[0]
	// chat.update without blocks keeps them.
	if p.Text != "parent v3" || len(p.Blocks) != 1 || len(p.Edits) != 2 || p.Edits[0].Text != "parent" || p.Edits[1].Text != "parent v2" || p.Edits[1].ReplacedVia != "chat.update" {
		t.Errorf("parent %+v", p)
	}
	replies := s.Replies("#deploys", parent)
	if len(replies) != 2 || replies[0].Text != "one" || replies[1].Text != "two" || replies[1].ThreadTS != parent {
		t.Fatalf("replies %+v", replies)
	}
	all := s.Messages("C0000001")
	for i := 1; i < len(all); i++ {
		if all[i-1].TS >= all[i].TS {
			t.Errorf("ts not increasing: %s, %s", all[i-1].TS, all[i].TS)
		}
	}
}

func TestSlackRateLimit(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	hook := s.WebhookURL(t, "#deploys")
	s.RateLimit(2, 9)
	code, after, out := slackCall(t, s, "chat.postMessage", "Bearer "+slackToken, map[string]any{"channel": "#deploys", "text": "x"})
	if code != http.StatusTooManyRequests || after != "9" || out["error"] != "ratelimited" {
		t.Errorf("%d %q %v", code, after, out)
	}
	resp, err := http.Post(hook, "application/json", strings.NewReader(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "9" {
		t.Errorf("webhook %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if out := post(t, s, map[string]any{"channel": "#deploys", "text": "x"}); out["ok"] != true {
		t.Errorf("after the limit: %v", out)
	}
	calls := s.Calls()
	if len(calls) != 3 || calls[0].Result != "ratelimited" || calls[1] != (testkit.SlackCall{Method: "webhook", Result: "rate_limited"}) || calls[2].Result != "ok" {
		t.Errorf("calls %+v", calls)
	}
}

func TestSlackIncomingWebhook(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	hook := s.WebhookURL(t, "#deploys")
	send := func(url, body string) (int, string) {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		url, body string
		code      int
		answer    string
	}{
		{hook, `{"text":"hello","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hello*"}}]}`, 200, "ok"},
		{hook, `{"text":"x","blocks":[{"type":"bogus"}]}`, 400, "invalid_blocks"},
		{hook, `{}`, 400, "no_text"},
		{hook, `not json`, 400, "invalid_payload"},
		{s.URL + "/services/B9999999", `{"text":"x"}`, 404, "no_service"},
	} {
		if code, answer := send(c.url, c.body); code != c.code || answer != c.answer {
			t.Errorf("%s: %d %q, want %d %q", c.body, code, answer, c.code, c.answer)
		}
	}
	msgs := s.Messages("#deploys")
	if len(msgs) != 1 || msgs[0].Via != "webhook" || msgs[0].Text != "hello" || !strings.Contains(msgs[0].Content(), "*hello*") {
		t.Errorf("messages %+v", msgs)
	}
}

func TestSlackHistoryWithMetadata(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	var tss []string
	for i := range 5 {
		body := map[string]any{"channel": "#deploys", "text": fmt.Sprint(i)}
		if i == 1 {
			body["metadata"] = map[string]any{"event_type": "slipway_thread", "event_payload": map[string]any{"key": "k1"}}
		}
		tss = append(tss, post(t, s, body)["ts"].(string))
	}
	post(t, s, map[string]any{"channel": "#deploys", "text": "reply", "thread_ts": tss[1]})
	if out := post(t, s, map[string]any{"channel": "#deploys", "text": "x", "metadata": map[string]any{"event_type": "t"}}); out["error"] != "invalid_metadata_format" {
		t.Errorf("bad metadata: %v", out)
	}

	history := func(q url.Values) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, s.APIURL+"/conversations.history?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+slackToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	out := history(url.Values{"channel": {"C0000001"}, "limit": {"3"}})
	msgs := out["messages"].([]any)
	if len(msgs) != 3 || msgs[0].(map[string]any)["ts"] != tss[4] || out["has_more"] != true {
		t.Fatalf("page 1: %v", out)
	}
	if _, ok := msgs[0].(map[string]any)["metadata"]; ok {
		t.Error("metadata without include_all_metadata")
	}
	next := out["response_metadata"].(map[string]any)["next_cursor"].(string)
	out = history(url.Values{"channel": {"C0000001"}, "limit": {"3"}, "cursor": {next}, "include_all_metadata": {"true"}})
	msgs = out["messages"].([]any)
	if len(msgs) != 2 || out["has_more"] != false {
		t.Fatalf("page 2: %v", out)
	}
	m1 := msgs[0].(map[string]any)
	if m1["ts"] != tss[1] || m1["metadata"].(map[string]any)["event_payload"].(map[string]any)["key"] != "k1" || m1["reply_count"] != float64(1) {
		t.Errorf("message with metadata: %v", m1)
	}
	out = history(url.Values{"channel": {"C0000001"}, "oldest": {tss[3]}})
	if msgs := out["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["ts"] != tss[4] {
		t.Errorf("oldest (exclusive): %v", out)
	}
	if out := history(url.Values{"channel": {"#deploys"}}); out["error"] != "channel_not_found" {
		t.Errorf("history by name: %v", out)
	}
}

func TestSlackInteractionIsSignedAndResponseURLWorks(t *testing.T) {
	s := testkit.NewSlack(t, slackToken, "#deploys")
	msg := s.PostMessage(t, "#deploys", "approve?", []any{
		section("approve?"),
		map[string]any{"type": "actions", "block_id": "slipway_approval", "elements": []any{
			map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Approve"}, "action_id": "slipway_approve", "value": "apr-1", "style": "primary"},
		}},
	})

	const secret = "signing-secret"
	type got struct {
		payload map[string]any
		valid   bool
	}
	received := make(chan got, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Slack-Request-Timestamp")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("v0:" + ts + ":" + string(body)))
		want := "v0=" + hex.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		form, _ := url.ParseQuery(string(body))
		var p map[string]any
		_ = json.Unmarshal([]byte(form.Get("payload")), &p)
		received <- got{p, hmac.Equal([]byte(want), []byte(r.Header.Get("X-Slack-Signature"))) &&
			time.Since(time.Unix(sec, 0)) < time.Minute && r.Header.Get("Content-Type") == "application/x-www-form-urlencoded"}
	}))
	t.Cleanup(app.Close)

	if code, _ := s.Interact(t, app.URL, secret, "U0ALICE01", "slipway_approve", "apr-1", msg); code != http.StatusOK {
		t.Fatalf("%d", code)
	}
	g := <-received
	if !g.valid {
		t.Fatal("the interaction is not signed as Slack signs")
	}
	p := g.payload
	act := p["actions"].([]any)[0].(map[string]any)
	container := p["container"].(map[string]any)
	if p["type"] != "block_actions" || p["user"].(map[string]any)["id"] != "U0ALICE01" ||
		act["action_id"] != "slipway_approve" || act["value"] != "apr-1" || act["block_id"] != "slipway_approval" ||
		container["channel_id"] != msg.Channel || container["message_ts"] != msg.TS ||
		p["channel"].(map[string]any)["id"] != msg.Channel || p["message"].(map[string]any)["ts"] != msg.TS {
		t.Fatalf("payload %v", p)
	}
	responseURL := p["response_url"].(string)

	respond := func(body string) int {
		resp, err := http.Post(responseURL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := respond(`{"response_type":"ephemeral","text":"only you"}`); code != 200 {
		t.Fatalf("ephemeral: %d", code)
	}
	if code := respond(`{"replace_original":true,"text":"done","blocks":[{"type":"context","elements":[{"type":"mrkdwn","text":"Approved by alice"}]}]}`); code != 200 {
		t.Fatalf("replace: %d", code)
	}
	if code := respond(`{"replace_original":true,"text":"x","blocks":[{"type":"nope"}]}`); code != 400 {
		t.Fatalf("invalid blocks: %d", code)
	}
	rs := s.Responses()
	if len(rs) != 1 || rs[0].User != "U0ALICE01" || rs[0].Text != "only you" || rs[0].MessageTS != msg.TS {
		t.Errorf("responses %+v", rs)
	}
	cur, _ := s.Message(msg.Channel, msg.TS)
	if cur.Text != "done" || len(cur.Buttons()) != 0 || !strings.Contains(cur.Content(), "Approved by alice") ||
		len(cur.Edits) != 1 || cur.Edits[0].ReplacedVia != "response_url" || len(cur.Edits[0].Blocks) != 2 {
		t.Errorf("message %+v", cur)
	}
	// A response_url works five times.
	for range 3 {
		respond(`{"text":"again"}`)
	}
	if code := respond(`{"text":"sixth"}`); code != http.StatusNotFound {
		t.Errorf("sixth use: %d, want 404", code)
	}
}
