package slack_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/slack"
)

const (
	token    = "xoxb-1111-2222-slipwaytesttoken"
	receiver = "team-slack"
	deploys  = "#deploys"
	payments = "#payments"
	digest   = "sha256:4d6f0a1c2b3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdd"
)

// testLogger writes to the test's output, shown when it fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// rig is a fake Slack with the channels #deploys and #payments, and
// JetStream for the threads bucket.
type rig struct {
	slack *testkit.Slack
	js    jetstream.JetStream
	log   *slog.Logger
}

func newRig(t *testing.T) *rig {
	t.Helper()
	_, js := testkit.NATS(t).Connect(t)
	return &rig{slack: testkit.NewSlack(t, token, deploys, payments), js: js, log: testLogger(t)}
}

func (r *rig) options() notify.Options {
	return notify.Options{Logger: r.log, HTTPClient: &http.Client{Timeout: 10 * time.Second}, JS: r.js, Replicas: 1}
}

// bot is a bot-mode receiver posting to #deploys with tok.
func (r *rig) bot(t *testing.T, tok string) notify.Receiver {
	t.Helper()
	rcv, err := slack.New(receiver, config.Receiver{Name: receiver, Slack: &config.SlackReceiver{
		Token: tok, Channel: deploys, APIURL: r.slack.APIURL, SigningSecret: signingSecret,
	}}, r.options())
	if err != nil {
		t.Fatal(err)
	}
	if rcv.Name() != receiver || rcv.Kind() != "slack" {
		t.Fatalf("Name %q Kind %q", rcv.Name(), rcv.Kind())
	}
	return rcv
}

func (r *rig) kv(t *testing.T) jetstream.KeyValue {
	t.Helper()
	kv, err := r.js.KeyValue(t.Context(), slack.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// step is one message of a release.
type step struct {
	typ                       events.Type
	env, title, status, sev   string
	data                      any
	approval                  *notify.Approval
	facts                     []notify.Fact
	channel                   string
	thread, threadTitle, link string
	at                        time.Time
}

var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func note(t *testing.T, i int, s step) notify.Notification {
	t.Helper()
	if s.at.IsZero() {
		s.at = t0.Add(time.Duration(i) * time.Minute)
	}
	if s.data == nil {
		s.data = map[string]any{}
	}
	e, err := events.New(t.Context(), events.Spec{
		ID: events.ID("slack-test", fmt.Sprint(i), s.title), Type: s.typ, Source: "/test",
		Environment: s.env, Subject: "registry/apps/web:1.4.0@" + digest, Time: s.at, Data: s.data,
	})
	if err != nil {
		t.Fatal(err)
	}
	thread, threadTitle := s.thread, s.threadTitle
	if thread == "" {
		thread, threadTitle = digest, "apps/web 1.4.0"
	}
	return notify.Notification{Event: e, Channel: s.channel, Message: notify.Message{
		Title: s.title, Text: "", Status: s.status, Severity: s.sev, Facts: s.facts,
		Thread: thread, ThreadTitle: threadTitle, Approval: s.approval, Link: s.link,
	}}
}

// release is the messages of one release from push to production.
func release() []step {
	return []step{
		{typ: events.TypeImagePushed, env: "dev", title: "apps/web 1.4.0 pushed to dev", status: "pushed", sev: notify.Info,
			facts: []notify.Fact{{Name: "Image", Value: "registry.dev/apps/web:1.4.0"}, {Name: "Digest", Value: digest}, {Name: "Pushed by", Value: "ci-bot"}}},
		{typ: events.TypeImagePromoted, env: "tst", title: "apps/web 1.4.0 promoted to tst", status: "promoted", sev: notify.Good},
		{typ: events.TypeApprovalRequested, env: "prd", title: "apps/web 1.4.0 waits for approval to prd", status: "approval requested", sev: notify.Warning,
			approval: &notify.Approval{ID: "apr-0123456789", Promotion: "tst-to-prd", Approvers: []string{"release-manager"}}},
		{typ: events.TypeApprovalGranted, env: "prd", title: "apps/web 1.4.0 approved for prd by release-manager", status: "approved", sev: notify.Good},
		{typ: events.TypeImagePromoted, env: "prd", title: "apps/web 1.4.0 promoted to prd", status: "promoted", sev: notify.Good},
		{typ: events.TypeDeploymentStarted, env: "prd", title: "apps/web 1.4.0 deploying on vsphere-prd", status: "deploying", sev: notify.Info,
			data: events.Deployment{Cluster: "vsphere-prd", Environment: "prd", AppID: "/apps/web"}},
		{typ: events.TypeDeploymentSucceeded, env: "prd", title: "apps/web 1.4.0 deployed on vsphere-prd", status: "deployed", sev: notify.Good,
			data: events.Deployment{Cluster: "vsphere-prd", Environment: "prd", AppID: "/apps/web", DurationMs: 42000}, link: "https://marathon.prd.example/ui/#/apps/%2Fapps%2Fweb"},
	}
}

func TestBotReleaseIsOneThread(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	steps := release()
	for i, s := range steps {
		if err := rcv.Notify(t.Context(), note(t, i, s)); err != nil {
			t.Fatalf("step %d (%s): %v", i, s.title, err)
		}
	}

	parents := r.slack.Parents(deploys)
	if len(parents) != 1 {
		t.Fatalf("%d parents, want 1: %+v", len(parents), parents)
	}
	p := parents[0]
	if want := "apps/web 1.4.0 — deployed on vsphere-prd"; p.Text != want {
		t.Errorf("parent text %q, want %q", p.Text, want)
	}
	if !strings.Contains(p.Content(), "deployed on vsphere-prd") || !strings.Contains(p.Content(), ":white_check_mark:") {
		t.Errorf("parent blocks do not show the latest status:\n%s", p.Content())
	}
	// Created with the first status, then updated once per later message.
	if len(p.Edits) != len(steps)-1 {
		t.Errorf("parent edited %d times, want %d", len(p.Edits), len(steps)-1)
	}
	if len(p.Edits) > 0 && p.Edits[0].Text != "apps/web 1.4.0 — pushed in dev" {
		t.Errorf("first parent version %q", p.Edits[0].Text)
	}
	if p.Metadata["event_type"] != slack.MetadataType ||
		p.Metadata["event_payload"].(map[string]any)["key"] != slack.ThreadKey(receiver, deploys, digest) {
		t.Errorf("parent metadata %v", p.Metadata)
	}

	replies := r.slack.Replies(deploys, p.TS)
	if len(replies) != len(steps) {
		t.Fatalf("%d replies, want %d", len(replies), len(steps))
	}
	for i, m := range replies {
		if !strings.HasPrefix(m.Text, steps[i].title) {
			t.Errorf("reply %d is %q, want %q", i, m.Text, steps[i].title)
		}
	}
	if all := r.slack.Messages(deploys); len(all) != len(steps)+1 {
		t.Errorf("%d messages in the channel, want %d", len(all), len(steps)+1)
	}
	// The facts, the context and the link are in the blocks.
	first := replies[0].Content()
	for _, want := range []string{"*Image*", "registry.dev/apps/web:1.4.0", "*Pushed by*", "*dev*", "<!date^"} {
		if !strings.Contains(first, want) {
			t.Errorf("first reply lacks %q:\n%s", want, first)
		}
	}
	if last := replies[len(replies)-1].Content(); !strings.Contains(last, "|Details>") || !strings.Contains(last, "vsphere-prd") {
		t.Errorf("last reply lacks the link or the cluster:\n%s", last)
	}
	// Only the approval request has buttons.
	for i, m := range replies {
		if (len(m.Buttons()) > 0) != (steps[i].approval != nil) {
			t.Errorf("reply %d buttons %v", i, m.Buttons())
		}
	}
}

func TestBotAnotherThreadAnotherParent(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	web := step{typ: events.TypeImagePushed, env: "dev", title: "apps/web 1.4.0 pushed to dev", status: "pushed"}
	api := step{typ: events.TypeImagePushed, env: "dev", title: "apps/api 2.0.0 pushed to dev", status: "pushed",
		thread: "sha256:api", threadTitle: "apps/api 2.0.0"}
	for i, s := range []step{web, api, web, api, api} {
		if err := rcv.Notify(t.Context(), note(t, i, s)); err != nil {
			t.Fatal(err)
		}
	}
	parents := r.slack.Parents(deploys)
	if len(parents) != 2 {
		t.Fatalf("%d parents, want 2", len(parents))
	}
	if !strings.HasPrefix(parents[0].Text, "apps/web 1.4.0 — ") || !strings.HasPrefix(parents[1].Text, "apps/api 2.0.0 — ") {
		t.Errorf("parents %q, %q", parents[0].Text, parents[1].Text)
	}
	if n := len(r.slack.Replies(deploys, parents[0].TS)); n != 2 {
		t.Errorf("web has %d replies, want 2", n)
	}
	if n := len(r.slack.Replies(deploys, parents[1].TS)); n != 3 {
		t.Errorf("api has %d replies, want 3", n)
	}
}

func TestBotMessageWithoutThreadIsTopLevel(t *testing.T) {
	r := newRig(t)
	n := note(t, 0, step{typ: events.TypeDriftDetected, env: "prd", title: "drift on vsphere-prd", status: "drift", sev: notify.Warning})
	n.Message.Thread, n.Message.ThreadTitle = "", ""
	if err := r.bot(t, token).Notify(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	msgs := r.slack.Messages(deploys)
	if len(msgs) != 1 || msgs[0].ThreadTS != "" || !strings.HasPrefix(msgs[0].Text, "drift on vsphere-prd") {
		t.Fatalf("messages %+v", msgs)
	}
}

func TestBotChannelOverride(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	s := step{typ: events.TypeDeploymentSucceeded, env: "prd", title: "apps/web 1.4.0 deployed on vsphere-prd", status: "deployed",
		data: events.Deployment{Cluster: "vsphere-prd", Environment: "prd"}}
	over := s
	over.channel = payments
	for i, st := range []step{s, over, over} {
		if err := rcv.Notify(t.Context(), note(t, i, st)); err != nil {
			t.Fatal(err)
		}
	}
	dp, pp := r.slack.Parents(deploys), r.slack.Parents(payments)
	if len(dp) != 1 || len(pp) != 1 {
		t.Fatalf("parents: %d in #deploys, %d in #payments; want one each", len(dp), len(pp))
	}
	if n := len(r.slack.Replies(deploys, dp[0].TS)); n != 1 {
		t.Errorf("#deploys has %d replies, want 1", n)
	}
	if n := len(r.slack.Replies(payments, pp[0].TS)); n != 2 {
		t.Errorf("#payments has %d replies, want 2", n)
	}
	if pp[0].Channel != r.slack.ChannelID(t, payments) {
		t.Errorf("parent in %s", pp[0].Channel)
	}
}

func TestBotApprovalButtons(t *testing.T) {
	r := newRig(t)
	s := release()[2]
	if err := r.bot(t, token).Notify(t.Context(), note(t, 0, s)); err != nil {
		t.Fatal(err) // the fake refuses invalid Block Kit
	}
	p := r.slack.Parents(deploys)[0]
	replies := r.slack.Replies(deploys, p.TS)
	if len(replies) != 1 {
		t.Fatalf("%d replies", len(replies))
	}
	got := replies[0].Buttons()
	want := []testkit.SlackButton{
		{BlockID: "slipway_approval", ActionID: "slipway_approve", Value: "apr-0123456789", Style: "primary", Text: "Approve"},
		{BlockID: "slipway_approval", ActionID: "slipway_reject", Value: "apr-0123456789", Style: "danger", Text: "Reject"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("buttons %+v\nwant %+v", got, want)
	}
	if !strings.Contains(p.Content(), ":warning:") || p.Text != "apps/web 1.4.0 — approval requested in prd" {
		t.Errorf("parent %q\n%s", p.Text, p.Content())
	}
}

func TestBotMarkupInMessagesIsEscaped(t *testing.T) {
	r := newRig(t)
	s := step{typ: events.TypeImagePushed, env: "dev", title: "apps/<web> & co pushed", status: "pushed",
		facts: []notify.Fact{{Name: "Note", Value: "<!channel> hi"}}}
	if err := r.bot(t, token).Notify(t.Context(), note(t, 0, s)); err != nil {
		t.Fatal(err)
	}
	p := r.slack.Parents(deploys)[0]
	c := r.slack.Replies(deploys, p.TS)[0].Content()
	if strings.Contains(c, "<!channel>") || !strings.Contains(c, "&lt;!channel&gt;") || !strings.Contains(c, "apps/&lt;web&gt; &amp; co") {
		t.Errorf("markup not escaped:\n%s", c)
	}
}

func TestBotManyFactsStayValidBlockKit(t *testing.T) {
	r := newRig(t)
	var facts []notify.Fact
	for i := range 23 {
		facts = append(facts, notify.Fact{Name: fmt.Sprintf("fact %d", i), Value: strings.Repeat("x", 2500)})
	}
	s := step{typ: events.TypeImagePushed, env: "dev", title: strings.Repeat("long title ", 400), status: "pushed", facts: facts}
	if err := r.bot(t, token).Notify(t.Context(), note(t, 0, s)); err != nil {
		t.Fatal(err)
	}
	p := r.slack.Parents(deploys)[0]
	m := r.slack.Replies(deploys, p.TS)[0]
	fields := 0
	for _, b := range m.Blocks {
		if f, ok := b["fields"].([]any); ok {
			fields += len(f)
		}
	}
	if fields != 23 {
		t.Errorf("%d fields, want 23", fields)
	}
}

// retryDelay returns the delay of a bus.RetryAfter in err's chain. bus
// does not export it; its consumer reads it the same way (errors.As on its
// unexported type), so the test reads the field.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct &&
			v.Elem().Type().Name() == "retryAfterError" && v.Elem().Type().PkgPath() == "github.com/slipway-cd/slipway/pkg/events/bus" {
			return time.Duration(v.Elem().FieldByName("delay").Int())
		}
	}
	t.Fatalf("%v is not a bus.RetryAfter", err)
	return 0
}

func TestBotRateLimitedHonoursRetryAfter(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	steps := release()

	// Limited on the parent: nothing is posted, the retry creates it.
	r.slack.RateLimit(1, 7)
	err := rcv.Notify(t.Context(), note(t, 0, steps[0]))
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err %v, want a retryable rate limit", err)
	}
	if d := retryDelay(t, err); d != 7*time.Second {
		t.Errorf("retry after %s, want 7s", d)
	}
	var se *slack.Error
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || se.Code != "ratelimited" || se.RetryAfter != 7*time.Second {
		t.Errorf("error %#v", se)
	}
	if n := len(r.slack.Messages(deploys)); n != 0 {
		t.Fatalf("%d messages after a rate limit", n)
	}
	if err := rcv.Notify(t.Context(), note(t, 0, steps[0])); err != nil {
		t.Fatal(err)
	}

	// Limited on the parent's update: the reply is not posted, so the
	// retry does not post it twice.
	r.slack.RateLimit(1, 2)
	err = rcv.Notify(t.Context(), note(t, 1, steps[1]))
	if d := retryDelay(t, err); d != 2*time.Second {
		t.Errorf("retry after %s, want 2s", d)
	}
	if err := rcv.Notify(t.Context(), note(t, 1, steps[1])); err != nil {
		t.Fatal(err)
	}

	// Limited on the reply itself.
	r.slack.RateLimit(1, 1)
	err = rcv.Notify(t.Context(), note(t, 2, steps[2]))
	if d := retryDelay(t, err); d != time.Second {
		t.Errorf("retry after %s, want 1s", d)
	}
	if err := rcv.Notify(t.Context(), note(t, 2, steps[2])); err != nil {
		t.Fatal(err)
	}

	parents := r.slack.Parents(deploys)
	if len(parents) != 1 {
		t.Fatalf("%d parents", len(parents))
	}
	replies := r.slack.Replies(deploys, parents[0].TS)
	if len(replies) != 3 {
		t.Fatalf("%d replies, want 3", len(replies))
	}
	for i, m := range replies {
		if !strings.HasPrefix(m.Text, steps[i].title) {
			t.Errorf("reply %d %q", i, m.Text)
		}
	}
}

func TestBotUnknownChannelIsPermanent(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	n := note(t, 0, release()[0])
	n.Channel = "#nowhere"
	err := rcv.Notify(t.Context(), n)
	if !bus.IsPermanent(err) || !slack.IsCode(err, "channel_not_found") {
		t.Fatalf("err %v, want permanent channel_not_found", err)
	}
	// The claim was released: nothing is left in the bucket.
	if _, err := r.kv(t).Get(t.Context(), slack.ThreadKey(receiver, "#nowhere", digest)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("claim left behind: %v", err)
	}
}

func TestBotBadTokenIsPermanent(t *testing.T) {
	r := newRig(t)
	err := r.bot(t, "xoxb-not-the-token").Notify(t.Context(), note(t, 0, release()[0]))
	if !bus.IsPermanent(err) || !slack.IsCode(err, "invalid_auth") {
		t.Fatalf("err %v, want permanent invalid_auth", err)
	}
	if strings.Contains(err.Error(), "xoxb-") {
		t.Errorf("the token is in the error: %v", err)
	}
	if n := len(r.slack.Messages(deploys)); n != 0 {
		t.Errorf("%d messages", n)
	}
}

// A proxy's answers in front of Slack follow the one HTTP retry rule: 5xx
// and 425 are retried, after the Retry-After a proxy sent ("0": the
// shortest back-off step).
func TestBotServerErrorIsRetried(t *testing.T) {
	_, js := testkit.NATS(t).Connect(t)
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       time.Duration // -1: no bus.RetryAfter
	}{
		{http.StatusServiceUnavailable, "", -1},
		{http.StatusTooEarly, "", -1},
		{http.StatusServiceUnavailable, "30", 30 * time.Second},
		{http.StatusBadGateway, "0", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			http.Error(w, "upstream connect error", tc.status)
		}))
		t.Cleanup(srv.Close)
		rcv, err := slack.New(receiver, config.Receiver{Slack: &config.SlackReceiver{Token: token, Channel: deploys, APIURL: srv.URL}},
			notify.Options{Logger: testLogger(t), HTTPClient: srv.Client(), JS: js})
		if err != nil {
			t.Fatal(err)
		}
		err = rcv.Notify(t.Context(), note(t, 0, release()[0]))
		var se *slack.Error
		if err == nil || bus.IsPermanent(err) || !errors.As(err, &se) || se.Status != tc.status || se.RetryAfter != max(tc.want, 0) {
			t.Fatalf("%d Retry-After %q: err %v, want a retryable %d", tc.status, tc.retryAfter, err, tc.status)
		}
		if tc.want >= 0 {
			if d := retryDelay(t, err); d != tc.want {
				t.Errorf("%d Retry-After %q: retry after %s, want %s", tc.status, tc.retryAfter, d, tc.want)
			}
		}
	}
}

func TestBotParentDeletedInSlackIsReplaced(t *testing.T) {
	r := newRig(t)
	// The bucket names a parent Slack does not have (deleted by someone).
	key := slack.ThreadKey(receiver, deploys, digest)
	rcv := r.bot(t, token) // creates the bucket
	if _, err := r.kv(t).Put(t.Context(), key, slack.ParentValue(r.slack.ChannelID(t, deploys), "1600000000.000100")); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Notify(t.Context(), note(t, 0, release()[1])); err != nil {
		t.Fatal(err)
	}
	parents := r.slack.Parents(deploys)
	if len(parents) != 1 || len(r.slack.Replies(deploys, parents[0].TS)) != 1 {
		t.Fatalf("messages %+v", r.slack.Messages(deploys))
	}
}

func TestBotOlderEventKeepsNewerStatus(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	steps := release()
	if err := rcv.Notify(t.Context(), note(t, 6, steps[6])); err != nil { // deployed, at t0+6m
		t.Fatal(err)
	}
	if err := rcv.Notify(t.Context(), note(t, 5, steps[5])); err != nil { // deploying, at t0+5m, late
		t.Fatal(err)
	}
	p := r.slack.Parents(deploys)[0]
	if p.Text != "apps/web 1.4.0 — deployed on vsphere-prd" || len(p.Edits) != 0 {
		t.Errorf("parent %q after %d edits", p.Text, len(p.Edits))
	}
	if n := len(r.slack.Replies(deploys, p.TS)); n != 2 {
		t.Errorf("%d replies", n)
	}
}

// postParent posts a parent as a delivery that died right after would
// have, metadata included.
func (r *rig) postParent(t *testing.T, key, text string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"channel": deploys, "text": text,
		"metadata": map[string]any{"event_type": slack.MetadataType, "event_payload": map[string]any{"key": key}},
	})
	req, _ := http.NewRequest(http.MethodPost, r.slack.APIURL+"/chat.postMessage", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		OK bool   `json:"ok"`
		TS string `json:"ts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.OK {
		t.Fatalf("post parent: %v %+v", err, out)
	}
	return out.TS
}

func TestBotParentOfACrashedDeliveryIsFound(t *testing.T) {
	for _, c := range []struct {
		name     string
		claimAge time.Duration
		unsure   bool
	}{
		{"stale claim", 2 * time.Hour, false},
		{"unsure claim", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			rcv := r.bot(t, token)
			// An earlier release taught the receiver #deploys' id.
			other := release()[0]
			other.thread, other.threadTitle = "sha256:other", "apps/other 1.0.0"
			if err := rcv.Notify(t.Context(), note(t, 0, other)); err != nil {
				t.Fatal(err)
			}
			// A delivery claimed the thread, posted its parent and died
			// before recording it.
			key := slack.ThreadKey(receiver, deploys, digest)
			if _, err := r.kv(t).Create(t.Context(), key, slack.ClaimValue(time.Now().Add(-c.claimAge), c.unsure)); err != nil {
				t.Fatal(err)
			}
			ts := r.postParent(t, key, "apps/web 1.4.0 — pushed in dev")

			if err := rcv.Notify(t.Context(), note(t, 1, release()[1])); err != nil {
				t.Fatal(err)
			}
			parents := r.slack.Parents(deploys)
			if len(parents) != 2 || parents[1].TS != ts {
				t.Fatalf("parents %+v, want the other release's and the crashed delivery's", parents)
			}
			replies := r.slack.Replies(deploys, ts)
			if len(replies) != 1 || !strings.HasPrefix(replies[0].Text, "apps/web 1.4.0 promoted to tst") {
				t.Fatalf("replies %+v", replies)
			}
			if parents[1].Text != "apps/web 1.4.0 — promoted in tst" {
				t.Errorf("found parent not updated: %q", parents[1].Text)
			}
		})
	}
}

func TestBotStaleClaimWithoutParentPostsOne(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	key := slack.ThreadKey(receiver, deploys, digest)
	if _, err := r.kv(t).Create(t.Context(), key, slack.ClaimValue(time.Now().Add(-time.Hour), false)); err != nil {
		t.Fatal(err)
	}
	// The channel's id is not known yet: no search, a new parent.
	if err := rcv.Notify(t.Context(), note(t, 0, release()[0])); err != nil {
		t.Fatal(err)
	}
	if err := rcv.Notify(t.Context(), note(t, 1, release()[1])); err != nil {
		t.Fatal(err)
	}
	parents := r.slack.Parents(deploys)
	if len(parents) != 1 || len(r.slack.Replies(deploys, parents[0].TS)) != 2 {
		t.Fatalf("messages %+v", r.slack.Messages(deploys))
	}
}

func TestBotWaitsForAnotherReplicasParent(t *testing.T) {
	r := newRig(t)
	rcv := r.bot(t, token)
	key := slack.ThreadKey(receiver, deploys, digest)
	kv := r.kv(t)
	rev, err := kv.Create(t.Context(), key, slack.ClaimValue(time.Now(), false))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rcv.Notify(t.Context(), note(t, 1, release()[1])) }()
	// The other replica posts its parent and records it.
	ts := r.postParent(t, key, "apps/web 1.4.0 — pushed in dev")
	if _, err := kv.Update(t.Context(), key, slack.ParentValue(r.slack.ChannelID(t, deploys), ts), rev); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	parents := r.slack.Parents(deploys)
	if len(parents) != 1 || parents[0].TS != ts || len(r.slack.Replies(deploys, ts)) != 1 {
		t.Fatalf("messages %+v", r.slack.Messages(deploys))
	}
}

func TestBotConcurrentReplicasMakeOneParent(t *testing.T) {
	r := newRig(t)
	replicas := []notify.Receiver{r.bot(t, token), r.bot(t, token), r.bot(t, token)}
	const perReplica = 4
	var wg sync.WaitGroup
	errs := make(chan error, len(replicas)*perReplica)
	for i, rcv := range replicas {
		for j := range perReplica {
			wg.Go(func() {
				n := note(t, i*perReplica+j, step{typ: events.TypeImagePushed, env: "dev", title: fmt.Sprintf("message %d.%d", i, j), status: "pushed"})
				errs <- rcv.Notify(t.Context(), n)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	parents := r.slack.Parents(deploys)
	if len(parents) != 1 {
		t.Fatalf("%d parents, want 1", len(parents))
	}
	if n := len(r.slack.Replies(deploys, parents[0].TS)); n != len(replicas)*perReplica {
		t.Errorf("%d replies, want %d", n, len(replicas)*perReplica)
	}
}

func TestNewNeedsJetStreamInBotMode(t *testing.T) {
	_, err := slack.New(receiver, config.Receiver{Slack: &config.SlackReceiver{Token: token, Channel: deploys}}, notify.Options{})
	if err == nil {
		t.Fatal("no error without JetStream")
	}
	if _, err := slack.New(receiver, config.Receiver{}, notify.Options{}); err == nil {
		t.Fatal("no error without slack configuration")
	}
}

// ---------------------------------------------------------------------------
// Webhook mode

func webhook(t *testing.T, s *testkit.Slack, hookURL string) notify.Receiver {
	t.Helper()
	rcv, err := slack.New(receiver, config.Receiver{Slack: &config.SlackReceiver{WebhookURL: hookURL, SigningSecret: signingSecret}},
		notify.Options{Logger: testLogger(t), HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return rcv
}

func TestWebhookPostsBlockKit(t *testing.T) {
	s := testkit.NewSlack(t, token, deploys)
	rcv := webhook(t, s, s.WebhookURL(t, deploys))
	steps := release()
	for i, st := range steps[:3] {
		if err := rcv.Notify(t.Context(), note(t, i, st)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := s.Messages(deploys)
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.Via != "webhook" || m.ThreadTS != "" || !strings.HasPrefix(m.Text, steps[i].title) || len(m.Blocks) == 0 {
			t.Errorf("message %d: %+v", i, m)
		}
	}
	if b := msgs[2].Buttons(); len(b) != 2 || b[0].ActionID != "slipway_approve" || b[1].ActionID != "slipway_reject" {
		t.Errorf("approval buttons %+v", b)
	}
}

// signingSecret is the Slack app's; ingest verifies button presses with it.
const signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// TestNoButtonsWithoutSigningSecret: without the signing secret ingest
// cannot accept a press, so buttons would do nothing; the message names the
// commands instead.
func TestNoButtonsWithoutSigningSecret(t *testing.T) {
	s := testkit.NewSlack(t, token, deploys)
	rcv, err := slack.New(receiver, config.Receiver{Slack: &config.SlackReceiver{WebhookURL: s.WebhookURL(t, deploys)}},
		notify.Options{Logger: testLogger(t), HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Notify(t.Context(), note(t, 2, release()[2])); err != nil {
		t.Fatal(err)
	}
	m := s.Messages(deploys)[0]
	if b := m.Buttons(); len(b) != 0 {
		t.Errorf("buttons %+v without a signing secret", b)
	}
	if !strings.Contains(m.Content(), "slipway approvals approve apr-0123456789") {
		t.Errorf("no approval command in %s", m.Content())
	}
}

func TestWebhookErrors(t *testing.T) {
	s := testkit.NewSlack(t, token, deploys)
	hook := s.WebhookURL(t, deploys)
	rcv := webhook(t, s, hook)
	n := note(t, 0, release()[0])

	s.RateLimit(1, 30)
	err := rcv.Notify(t.Context(), n)
	if d := retryDelay(t, err); d != 30*time.Second {
		t.Errorf("retry after %s", d)
	}

	over := n
	over.Channel = payments
	if err := rcv.Notify(t.Context(), over); !bus.IsPermanent(err) {
		t.Errorf("channel override through a webhook: %v, want permanent", err)
	}

	unknown := webhook(t, s, s.URL+"/services/B9999999")
	err = unknown.Notify(t.Context(), n)
	if !bus.IsPermanent(err) || !slack.IsCode(err, "no_service") {
		t.Errorf("unknown webhook: %v, want permanent no_service", err)
	}

	// A transport error does not reveal the webhook URL (a secret).
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL + "/services/T0/B0/secret-part"
	srv.Close()
	err = webhook(t, s, dead).Notify(t.Context(), n)
	if err == nil || bus.IsPermanent(err) || strings.Contains(err.Error(), "secret-part") {
		t.Errorf("dead webhook: %v", err)
	}
	if len(s.Messages(deploys)) != 0 {
		t.Errorf("messages posted: %+v", s.Messages(deploys))
	}
}
