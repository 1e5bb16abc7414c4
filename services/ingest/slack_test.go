package ingest_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/ingest"
)

const (
	signingSecret      = "8f742231b10e8888abcd99yyyzzz85a5"
	otherSigningSecret = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	slackToken         = "xoxb-1111-2222-ingesttesttoken"
	slackChannel       = "#deploys"
	aliceSlack         = "U0ALICE01"
	bobSlack           = "U0BOB0001"
	carolSlack         = "U0CAROL01"
)

// slackConfig is approversConfig with Slack users for the approvers, and
// Slack receivers with signing secrets (two apps).
func slackConfig() *config.Config {
	cfg := approversConfig()
	cfg.Approvers[0].SlackUserID = aliceSlack
	cfg.Approvers[1].SlackUserID = bobSlack
	cfg.Approvers[2].SlackUserID = carolSlack
	cfg.Notify.Receivers = []config.Receiver{
		{Name: "team-slack", Slack: &config.SlackReceiver{Token: slackToken, Channel: slackChannel, SigningSecret: signingSecret}},
		{Name: "other-workspace", Slack: &config.SlackReceiver{Token: "xoxb-other", Channel: "#ops", SigningSecret: otherSigningSecret}},
		{Name: "hook", Slack: &config.SlackReceiver{WebhookURL: "https://hooks.slack.example/services/T/B/X"}},
	}
	return cfg
}

// slackRig is ingest with approvers and Slack receivers, and a fake Slack
// holding the messages the buttons are on.
type slackRig struct {
	*approvalRig
	slack *testkit.Slack
	// interactions is the full URL of POST /slack/interactions.
	interactions string
}

func newSlackRig(t *testing.T) *slackRig {
	t.Helper()
	return newSlackRigWith(t, slackConfig())
}

func newSlackRigWith(t *testing.T, cfg *config.Config) *slackRig {
	t.Helper()
	r := newRig(t)
	srv := r.serve(t, cfg)
	store, err := approval.Bind(t.Context(), r.js)
	if err != nil {
		t.Fatal(err)
	}
	return &slackRig{
		approvalRig:  &approvalRig{rig: r, url: srv.URL, store: store, logs: &syncBuffer{}},
		slack:        testkit.NewSlack(t, slackToken, slackChannel),
		interactions: srv.URL + "/slack/interactions",
	}
}

// approvalMessage posts the message the notifier posts for an
// approval.requested event: a section, a context and the buttons.
func (s *slackRig) approvalMessage(t *testing.T, id string) testkit.SlackMessage {
	t.Helper()
	blocks := []map[string]any{
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": ":warning: *payments/api 1.4.2 waits for approval to prd*"}},
		{"type": "section", "fields": []any{
			map[string]any{"type": "mrkdwn", "text": "*Promotion*\ntst-to-prd"},
			map[string]any{"type": "mrkdwn", "text": "*Approval*\n" + id},
		}},
		{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": "*prd*"}}},
		{"type": "actions", "block_id": "slipway_approval", "elements": []any{
			map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Approve", "emoji": true},
				"action_id": "slipway_approve", "value": id, "style": "primary"},
			map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Reject", "emoji": true},
				"action_id": "slipway_reject", "value": id, "style": "danger"},
		}},
	}
	return s.slack.PostMessage(t, slackChannel, "payments/api 1.4.2 waits for approval to prd", blocks)
}

// current returns the message as it is now.
func (s *slackRig) current(t *testing.T, m testkit.SlackMessage) testkit.SlackMessage {
	t.Helper()
	cur, ok := s.slack.Message(m.Channel, m.TS)
	if !ok {
		t.Fatalf("message %s gone", m.TS)
	}
	return cur
}

// waitEdits waits until m has been replaced n times.
func (s *slackRig) waitEdits(t *testing.T, m testkit.SlackMessage, n int) testkit.SlackMessage {
	t.Helper()
	testkit.WaitFor(t, "message replaced", func() bool { return len(s.current(t, m).Edits) >= n })
	return s.current(t, m)
}

// waitResponses waits for n ephemeral responses and returns them.
func (s *slackRig) waitResponses(t *testing.T, n int) []testkit.SlackResponse {
	t.Helper()
	testkit.WaitFor(t, "ephemeral response", func() bool { return len(s.slack.Responses()) >= n })
	return s.slack.Responses()
}

func (s *slackRig) press(t *testing.T, user, action, id string, m testkit.SlackMessage) {
	t.Helper()
	code, body := s.slack.Interact(t, s.interactions, signingSecret, user, action, id, m)
	if code != http.StatusOK || body != "" {
		t.Fatalf("answer %d %q, want 200 with an empty body", code, body)
	}
}

func TestSlackApproveByMappedApprover(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-1", "alice"))
	msg := s.approvalMessage(t, "apr-1")

	s.press(t, aliceSlack, "slipway_approve", "apr-1", msg)

	// The decision is taken before the answer.
	evs := decisionEvents(t, s.stream)
	if len(evs) != 1 || evs[0].Type() != string(events.TypeApprovalGranted) {
		t.Fatalf("decision events %v", evs)
	}
	d, err := events.DataAs[events.ApprovalDecision](evs[0])
	if err != nil || d.ApprovalID != "apr-1" || d.By != "alice" || d.Reason != "approved in Slack" {
		t.Errorf("decision %+v %v", d, err)
	}
	rec, err := s.store.Get(t.Context(), "apr-1")
	if err != nil || rec.State != approval.Granted || rec.DecidedBy != "alice" {
		t.Errorf("record %+v %v", rec, err)
	}

	// The message is replaced through the response_url: no buttons, who
	// decided, the rest as it was.
	cur := s.waitEdits(t, msg, 1)
	if cur.Edits[0].ReplacedVia != "response_url" {
		t.Errorf("replaced via %s", cur.Edits[0].ReplacedVia)
	}
	if len(cur.Buttons()) != 0 {
		t.Errorf("buttons left: %+v", cur.Buttons())
	}
	c := cur.Content()
	for _, want := range []string{"Approved by alice (<@" + aliceSlack + ">)", "waits for approval to prd", "*Promotion*\ntst-to-prd"} {
		if !strings.Contains(c, want) {
			t.Errorf("replaced message lacks %q:\n%s", want, c)
		}
	}
	if len(cur.Blocks) != len(msg.Blocks) { // actions out, the decision's context in
		t.Errorf("%d blocks, want %d", len(cur.Blocks), len(msg.Blocks))
	}
	if n := len(s.slack.Responses()); n != 0 {
		t.Errorf("%d ephemeral responses to a successful decision", n)
	}
}

// TestSlackDecisionShowsTheApproverLiterally: the rewritten message shows
// an approver's name as typed in the configuration: no mention or link
// from it, and none of its control or bidirectional-override characters
// (the notifier's mrkdwn escape, the one both use).
func TestSlackDecisionShowsTheApproverLiterally(t *testing.T) {
	cfg := slackConfig()
	cfg.Approvers[0].Name = "<!here> R&D\u202e lead\x1b[2J"
	s := newSlackRigWith(t, cfg)
	s.create(t, pendingRecord("apr-1"))
	msg := s.approvalMessage(t, "apr-1")

	s.press(t, aliceSlack, "slipway_approve", "apr-1", msg)

	cur := s.waitEdits(t, msg, 1)
	c := cur.Content()
	if want := "Approved by &lt;!here&gt; R&amp;D lead [2J (<@" + aliceSlack + ">)"; !strings.Contains(c, want) {
		t.Errorf("replaced message lacks %q:\n%q", want, c)
	}
	if strings.ContainsAny(c, "\u202e\x1b") {
		t.Errorf("replaced message keeps a control or override character:\n%q", c)
	}
	for _, m := range cur.Markup() {
		if m != "<@"+aliceSlack+">" && !strings.HasPrefix(m, "<!date^") {
			t.Errorf("markup %q in the replaced message", m)
		}
	}
}

// TestSlackOnlyApprovers: approvers with a Slack user and no API token
// decide with the buttons; the API knows no one.
func TestSlackOnlyApprovers(t *testing.T) {
	cfg := slackConfig()
	for i := range cfg.Approvers {
		cfg.Approvers[i].Token = ""
	}
	s := newSlackRigWith(t, cfg)
	s.create(t, pendingRecord("apr-1", "alice"))
	s.press(t, aliceSlack, "slipway_approve", "apr-1", s.approvalMessage(t, "apr-1"))
	rec, err := s.store.Get(t.Context(), "apr-1")
	if err != nil || rec.State != approval.Granted || rec.DecidedBy != "alice" {
		t.Errorf("record %+v %v", rec, err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/approvals", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /approvals with an empty bearer: %d, want 401", resp.StatusCode)
	}
}

func TestSlackReject(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-2"))
	msg := s.approvalMessage(t, "apr-2")

	s.press(t, bobSlack, "slipway_reject", "apr-2", msg)

	evs := decisionEvents(t, s.stream)
	if len(evs) != 1 || evs[0].Type() != string(events.TypeApprovalRejected) {
		t.Fatalf("decision events %v", evs)
	}
	if d, err := events.DataAs[events.ApprovalDecision](evs[0]); err != nil || d.By != "bob" || d.Reason != "rejected in Slack" {
		t.Errorf("decision %+v %v", d, err)
	}
	cur := s.waitEdits(t, msg, 1)
	if !strings.Contains(cur.Content(), "Rejected by bob (<@"+bobSlack+">)") || len(cur.Buttons()) != 0 {
		t.Errorf("replaced message:\n%s", cur.Content())
	}
}

func TestSlackSignatureIsRequired(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-3"))
	msg := s.approvalMessage(t, "apr-3")
	body := s.slack.InteractionBody(aliceSlack, "slipway_approve", "apr-3", msg)
	now := time.Now()

	send := func(t *testing.T, header http.Header, b []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.interactions, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	signed := func(secret string, at time.Time, b []byte) http.Header {
		ts := strconv.FormatInt(at.Unix(), 10)
		return http.Header{"X-Slack-Request-Timestamp": {ts}, "X-Slack-Signature": {testkit.SlackSignature(secret, ts, b)}}
	}
	tampered := bytes.Replace(body, []byte("apr-3"), []byte("apr-X"), 1)

	for _, c := range []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"wrong secret", signed("not-the-secret", now, body), body},
		{"a webhook receiver's URL as secret", signed("https://hooks.slack.example/services/T/B/X", now, body), body},
		{"stale timestamp", signed(signingSecret, now.Add(-6*time.Minute), body), body},
		{"timestamp in the future", signed(signingSecret, now.Add(6*time.Minute), body), body},
		{"body changed after signing", signed(signingSecret, now, body), tampered},
		{"timestamp changed after signing", http.Header{
			"X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix()+1, 10)},
			"X-Slack-Signature":         signed(signingSecret, now, body)["X-Slack-Signature"],
		}, body},
		{"no signature", http.Header{"X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix(), 10)}}, body},
		{"no timestamp", http.Header{"X-Slack-Signature": signed(signingSecret, now, body)["X-Slack-Signature"]}, body},
		{"another version", http.Header{
			"X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
			"X-Slack-Signature":         {strings.Replace(signed(signingSecret, now, body)["X-Slack-Signature"][0], "v0=", "v1=", 1)},
		}, body},
		{"not hex", http.Header{"X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix(), 10)}, "X-Slack-Signature": {"v0=zz"}}, body},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, raw := send(t, c.header, c.body)
			if code != http.StatusUnauthorized || strings.TrimSpace(raw) != `{"error":"unauthorized"}` {
				t.Fatalf("%d %s, want 401 {\"error\":\"unauthorized\"}", code, raw)
			}
		})
	}
	// Signed with either app's secret, within 5 minutes: accepted.
	t.Run("other app's secret, 4 minutes old", func(t *testing.T) {
		code, raw := send(t, signed(otherSigningSecret, now.Add(-4*time.Minute), body), body)
		if code != http.StatusOK || raw != "" {
			t.Fatalf("%d %q", code, raw)
		}
	})

	evs := decisionEvents(t, s.stream)
	if len(evs) != 1 {
		t.Fatalf("%d decision events, want the one of the valid request", len(evs))
	}
}

func TestSlackUnknownUserDecidesNothing(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-4"))
	msg := s.approvalMessage(t, "apr-4")

	s.press(t, "U0STRANGER", "slipway_approve", "apr-4", msg)

	rs := s.waitResponses(t, 1)
	if rs[0].User != "U0STRANGER" || rs[0].ResponseType != "ephemeral" || !strings.Contains(rs[0].Text, "not an approver") {
		t.Errorf("response %+v", rs[0])
	}
	if evs := decisionEvents(t, s.stream); len(evs) != 0 {
		t.Errorf("decision events %v", evs)
	}
	if rec, _ := s.store.Get(t.Context(), "apr-4"); rec.State != approval.Pending {
		t.Errorf("record %s", rec.State)
	}
	if cur := s.current(t, msg); len(cur.Edits) != 0 || len(cur.Buttons()) != 2 {
		t.Errorf("message changed: %+v", cur)
	}
}

func TestSlackApproverNotAllowedOnThePromotion(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-5", "alice"))
	msg := s.approvalMessage(t, "apr-5")

	s.press(t, bobSlack, "slipway_approve", "apr-5", msg)

	rs := s.waitResponses(t, 1)
	if rs[0].User != bobSlack || !strings.Contains(rs[0].Text, "bob, you are not an approver of promotion tst-to-prd") {
		t.Errorf("response %+v", rs[0])
	}
	if evs := decisionEvents(t, s.stream); len(evs) != 0 {
		t.Errorf("decision events %v", evs)
	}
	if cur := s.current(t, msg); len(cur.Edits) != 0 {
		t.Errorf("message changed: %+v", cur)
	}
}

func TestSlackSecondPressSaysWhoDecided(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-6"))
	msg := s.approvalMessage(t, "apr-6")

	s.press(t, aliceSlack, "slipway_approve", "apr-6", msg)
	s.waitEdits(t, msg, 1)

	// Bob, on a stale copy of the message with the buttons, rejects.
	s.press(t, bobSlack, "slipway_reject", "apr-6", msg)
	rs := s.waitResponses(t, 1)
	if rs[0].User != bobSlack || !strings.Contains(rs[0].Text, "already approved by alice") || !strings.Contains(rs[0].Text, "nothing changed") {
		t.Errorf("response %+v", rs[0])
	}
	cur := s.waitEdits(t, msg, 2)
	if !strings.Contains(cur.Content(), "Approved by alice") || strings.Contains(cur.Content(), "Rejected") {
		t.Errorf("message:\n%s", cur.Content())
	}

	// Alice presses again: no second event, and she is told plainly that
	// her press changed nothing, with when she decided.
	s.press(t, aliceSlack, "slipway_approve", "apr-6", msg)
	s.waitEdits(t, msg, 3)
	evs := decisionEvents(t, s.stream)
	if len(evs) != 1 || evs[0].Type() != string(events.TypeApprovalGranted) {
		t.Errorf("decision events %v", evs)
	}
	rec, _ := s.store.Get(t.Context(), "apr-6")
	rs = s.waitResponses(t, 2)
	want := "You already approved this <!date^" + strconv.FormatInt(rec.DecidedAt.Unix(), 10) + "^"
	if len(rs) != 2 || rs[1].User != aliceSlack || !strings.HasPrefix(rs[1].Text, want) || !strings.HasSuffix(rs[1].Text, "; nothing changed.") {
		t.Errorf("responses %+v, want the second to alice: %s…; nothing changed.", rs, want)
	}
}

func TestSlackExpiredApproval(t *testing.T) {
	s := newSlackRig(t)
	rec := pendingRecord("apr-7")
	rec.RequestedAt, rec.ExpiresAt = time.Now().Add(-2*time.Hour).UTC(), time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	s.create(t, rec)
	msg := s.approvalMessage(t, "apr-7")

	s.press(t, aliceSlack, "slipway_approve", "apr-7", msg)

	rs := s.waitResponses(t, 1)
	if !strings.Contains(rs[0].Text, "expired at "+rec.ExpiresAt.Format(time.RFC3339)) {
		t.Errorf("response %+v", rs[0])
	}
	cur := s.waitEdits(t, msg, 1)
	if len(cur.Buttons()) != 0 || !strings.Contains(cur.Content(), "expired") {
		t.Errorf("message:\n%s", cur.Content())
	}
	if evs := decisionEvents(t, s.stream); len(evs) != 0 {
		t.Errorf("decision events %v", evs)
	}
}

func TestSlackOtherInteractionsAreIgnored(t *testing.T) {
	s := newSlackRig(t)
	s.create(t, pendingRecord("apr-8"))
	msg := s.approvalMessage(t, "apr-8")
	code, raw := s.slack.Interact(t, s.interactions, signingSecret, aliceSlack, "some_other_action", "apr-8", msg)
	if code != http.StatusOK || raw != "" {
		t.Fatalf("%d %q", code, raw)
	}
	view := []byte("payload=" + `{"type":"view_submission","user":{"id":"` + aliceSlack + `"}}`)
	if code, raw := testkit.SignedPost(t, s.interactions, signingSecret, time.Now(), view); code != http.StatusOK || raw != "" {
		t.Fatalf("view_submission: %d %q", code, raw)
	}
	if code, _ := testkit.SignedPost(t, s.interactions, signingSecret, time.Now(), []byte("payload=%7Bnot-json")); code != http.StatusBadRequest {
		t.Fatalf("malformed payload: %d, want 400", code)
	}
	if evs := decisionEvents(t, s.stream); len(evs) != 0 {
		t.Errorf("decision events %v", evs)
	}
}

func TestSlackRouteNeedsASigningSecret(t *testing.T) {
	r := newRig(t)
	cfg := approversConfig()
	cfg.Notify.Receivers = []config.Receiver{{Name: "hook", Slack: &config.SlackReceiver{WebhookURL: "https://hooks.slack.example/services/T/B/X"}}}
	srv := r.serve(t, cfg)
	code, _ := testkit.SignedPost(t, srv.URL+"/slack/interactions", "", time.Now(), []byte("payload=%7B%7D"))
	if code != http.StatusNotFound {
		t.Fatalf("%d, want 404", code)
	}
}

func TestSlackUserOfTwoApproversIsRefused(t *testing.T) {
	r := newRig(t)
	cfg := slackConfig()
	cfg.Approvers[2].SlackUserID = aliceSlack
	_, err := ingest.NewHandler(r.deps(cfg))
	if err == nil || !strings.Contains(err.Error(), "approvers[2].slackUserId") {
		t.Fatalf("err %v", err)
	}
}
