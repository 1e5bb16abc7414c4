package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/slackmsg"
)

// routeSlack is where Slack sends the presses of the Approve / Reject
// buttons (contract: the Slack app's interactivity request URL).
const routeSlack = "/slack/interactions"

const (
	// slackMaxSkew is how far a request's timestamp may be from now
	// (Slack's recommendation against replays).
	slackMaxSkew = 5 * time.Minute
	// slackResponseTimeout bounds the post to a response_url.
	slackResponseTimeout = 10 * time.Second
	// slackMaxBody bounds an interaction request (a payload carries the
	// message's blocks).
	slackMaxBody = 1 << 20
)

// slackInteractions serves POST /slack/interactions: Slack's block_actions
// requests, signed with the Slack app's signing secret. A press of Approve
// or Reject by a Slack user who is a configured approver (slackUserId) is
// decided like the approval API decides (decideAndPublish); the message is
// then replaced, through the payload's response_url, by itself without the
// buttons and with who decided. Everything else the user should know (not
// an approver, already decided, expired) is an ephemeral response to them.
//
// Slack wants an answer within 3 seconds: the decision (a KV
// compare-and-set and a publish) is taken before answering 200 with an
// empty body, and the response_url is posted after the answer.
type slackInteractions struct {
	secrets   [][]byte
	users     map[string]string // Slack user id → approver name
	slackIDs  map[string]string // approver name → Slack user id
	approvals *approvalAPI
	client    *http.Client
	now       func() time.Time
}

// newSlackInteractions returns the Slack route's handler, or nil when no
// Slack receiver has a signing secret (then the route does not exist:
// 404).
func newSlackInteractions(d app.Deps, a *approvalAPI) (*slackInteractions, error) {
	s := &slackInteractions{
		users:     map[string]string{},
		slackIDs:  map[string]string{},
		approvals: a,
		client:    &http.Client{Timeout: slackResponseTimeout},
		now:       a.now,
	}
	seen := map[string]bool{}
	for _, r := range d.Config.Notify.Receivers {
		if r.Slack == nil || r.Slack.SigningSecret == "" || seen[r.Slack.SigningSecret] {
			continue
		}
		seen[r.Slack.SigningSecret] = true
		s.secrets = append(s.secrets, []byte(r.Slack.SigningSecret))
	}
	if len(s.secrets) == 0 {
		return nil, nil
	}
	first := map[string]int{}
	for i, ap := range d.Config.Approvers {
		if ap.SlackUserID == "" {
			continue
		}
		if j, dup := first[ap.SlackUserID]; dup {
			return nil, fmt.Errorf("approvers[%d].slackUserId: the same Slack user as approvers[%d] (%s); a Slack user is one approver", i, j, d.Config.Approvers[j].Name)
		}
		first[ap.SlackUserID] = i
		s.users[ap.SlackUserID] = ap.Name
		s.slackIDs[ap.Name] = ap.SlackUserID
	}
	if len(s.users) > 0 {
		if err := a.openStore(d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *slackInteractions) mount(e *echo.Echo) {
	e.POST(routeSlack, s.interact)
}

// slackPayload is the part of a block_actions payload that is read.
type slackPayload struct {
	Type string `json:"type"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	Actions []struct {
		ActionID string `json:"action_id"`
		BlockID  string `json:"block_id"`
		Value    string `json:"value"`
	} `json:"actions"`
	Container struct {
		ChannelID string `json:"channel_id"`
		MessageTS string `json:"message_ts"`
	} `json:"container"`
	Message struct {
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	} `json:"message"`
	ResponseURL string `json:"response_url"`
}

// slackResponse is a message posted to a response_url.
type slackResponse struct {
	ReplaceOriginal bool              `json:"replace_original"`
	ResponseType    string            `json:"response_type,omitempty"`
	Text            string            `json:"text"`
	Blocks          []json.RawMessage `json:"blocks,omitempty"`
}

func ephemeral(format string, args ...any) []slackResponse {
	return []slackResponse{{ResponseType: "ephemeral", Text: fmt.Sprintf(format, args...)}}
}

func (s *slackInteractions) answer(c echo.Context, code int) error {
	s.approvals.metrics.approvals.WithLabelValues("slack", strconv.Itoa(code)).Inc()
	if code == http.StatusOK {
		return c.NoContent(code)
	}
	msg := http.StatusText(code)
	if code == http.StatusUnauthorized {
		msg = "unauthorized"
	}
	return c.JSON(code, errorBody{strings.ToLower(msg)})
}

func (s *slackInteractions) interact(c echo.Context) error {
	ctx, span := serverSpan(c, c.Request().URL.Path)
	defer func() { answered(span, c.Response().Status); span.End() }()
	req := c.Request().WithContext(ctx)
	log := s.approvals.log
	body, err := readBody(c, slackMaxBody)
	if errors.Is(err, errTooLarge) {
		return s.answer(c, http.StatusRequestEntityTooLarge)
	}
	if err != nil {
		return s.answer(c, http.StatusBadRequest)
	}
	if !s.verify(req.Header, body) {
		log.InfoContext(req.Context(), "slack interaction without a valid signature", "remote", c.RealIP(),
			"hasSignature", req.Header.Get("X-Slack-Signature") != "")
		return s.answer(c, http.StatusUnauthorized)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return s.answer(c, http.StatusBadRequest)
	}
	var p slackPayload
	if err := json.Unmarshal([]byte(form.Get("payload")), &p); err != nil {
		return s.answer(c, http.StatusBadRequest)
	}
	if p.Type != "block_actions" {
		return s.answer(c, http.StatusOK) // not ours (shortcuts, views): nothing to do
	}
	for _, act := range p.Actions {
		// The buttons the notifier put on the message (slackmsg).
		id, grant, ok := slackmsg.Press(act.ActionID, act.Value)
		if !ok {
			continue
		}
		replies := s.decide(req.Context(), p, id, grant)
		if p.ResponseURL != "" && len(replies) > 0 {
			// After the answer: Slack wants one within 3 seconds.
			ctx := context.WithoutCancel(req.Context())
			go s.respond(ctx, p.ResponseURL, replies)
		}
		break // one press per request
	}
	return s.answer(c, http.StatusOK)
}

// decide takes the decision of a press and returns what to post to the
// response_url.
func (s *slackInteractions) decide(ctx context.Context, p slackPayload, id string, grant bool) []slackResponse {
	action := "reject"
	if grant {
		action = "approve"
	}
	name := s.users[p.User.ID]
	// A step of the interaction's request (its server span is
	// interact's), one per button pressed.
	ctx, span := tracer.Start(ctx, "approval "+action, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("slipway.approval", id), attribute.String("slipway.approver", name),
			attribute.String("slack.user", p.User.ID)))
	defer span.End()
	log := s.approvals.log
	if name == "" {
		log.InfoContext(ctx, "slack user who is not an approver pressed an approval button", "approval", id, "slackUser", p.User.ID)
		return ephemeral("<@%s>, you are not an approver: your Slack user is not one of Slipway's approvers, so nothing was decided.", p.User.ID)
	}
	if s.approvals.store == nil {
		return ephemeral("Approvals are not available in this Slipway.")
	}
	reason := "rejected in Slack"
	if grant {
		reason = "approved in Slack"
	}
	r, err := s.approvals.decideAndPublish(ctx, id, s.approvals.identity(name, events.ViaSlack), grant, reason)
	switch {
	case err == nil:
		return []slackResponse{s.decided(p, r)}
	case errors.Is(err, approval.ErrNotFound):
		return ephemeral("There is no approval %s (any more).", id)
	case errors.Is(err, errMayNotApprove):
		return ephemeral("%s, you may not approve in %s, so nothing was decided.", slackmsg.Escape(name), slackmsg.Escape(r.Environment))
	case errors.Is(err, approval.ErrNotAllowed):
		return ephemeral("%s, you are not an approver of promotion %s, so nothing was decided.", slackmsg.Escape(name), slackmsg.Escape(r.Promotion))
	case errors.Is(err, approval.ErrDecided):
		// Show the decision on the message too (it may have been taken
		// with the approval API, leaving the buttons), and tell the
		// presser that their press changed nothing.
		verb := "approved"
		if r.State == approval.Rejected {
			verb = "rejected"
		}
		when := slackDate(r.DecidedAt)
		if r.DecidedBy == name {
			return []slackResponse{s.decided(p, r), ephemeral("You already %s this %s; nothing changed.", verb, when)[0]}
		}
		return []slackResponse{s.decided(p, r), ephemeral("This approval was already %s by %s %s; nothing changed.", verb, slackmsg.Escape(r.DecidedBy), when)[0]}
	case errors.Is(err, approval.ErrExpired):
		return []slackResponse{s.replaced(p, ":hourglass: This approval "+expiredMessage(r)+"; nothing can be decided any more."),
			ephemeral("This approval %s.", expiredMessage(r))[0]}
	case errors.Is(err, approval.ErrEventNotStored):
		return ephemeral("Your decision is recorded, but Slipway could not announce it yet: press the button again.")
	case errors.Is(err, approval.ErrNoEvent):
		return ephemeral("Your decision is recorded, but Slipway cannot announce it: %s", err)
	default:
		log.WarnContext(ctx, "approvals store unavailable", "action", "slack", "error", err)
		return ephemeral("Approvals are unavailable right now; press the button again in a moment.")
	}
}

// decided is the message replaced with its decision.
func (s *slackInteractions) decided(p slackPayload, r approval.Record) slackResponse {
	verb, icon := "Approved", ":white_check_mark:"
	if r.State == approval.Rejected {
		verb, icon = "Rejected", ":no_entry:"
	}
	who := slackmsg.Escape(r.DecidedBy)
	if id := s.slackIDs[r.DecidedBy]; id != "" {
		who += " (<@" + id + ">)"
	}
	line := fmt.Sprintf("%s %s by %s", icon, verb, who)
	if !r.DecidedAt.IsZero() {
		line += " " + slackDate(r.DecidedAt)
	}
	return s.replaced(p, line)
}

// slackDate is t in the reader's time zone (Slack's date formatting), with
// the UTC time as the fallback text.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format(time.RFC3339))
}

// replaced is the original message without the approval buttons and with
// line at the end.
func (s *slackInteractions) replaced(p slackPayload, line string) slackResponse {
	var blocks []json.RawMessage
	for _, b := range p.Message.Blocks {
		if !isApprovalActions(b) {
			blocks = append(blocks, b)
		}
	}
	ctxBlock, _ := json.Marshal(map[string]any{
		"type":     "context",
		"elements": []any{map[string]any{"type": "mrkdwn", "text": line}},
	})
	blocks = append(blocks, ctxBlock)
	text := strings.TrimSpace(p.Message.Text + "\n" + line)
	return slackResponse{ReplaceOriginal: true, Text: text, Blocks: blocks}
}

// isApprovalActions reports an actions block with Slipway's buttons.
func isApprovalActions(raw json.RawMessage) bool {
	var b struct {
		Type     string `json:"type"`
		Elements []struct {
			ActionID string `json:"action_id"`
		} `json:"elements"`
	}
	if json.Unmarshal(raw, &b) != nil || b.Type != "actions" {
		return false
	}
	for _, e := range b.Elements {
		if slackmsg.IsApprovalButton(e.ActionID) {
			return true
		}
	}
	return false
}

// verify checks Slack's request signature: X-Slack-Signature is "v0=" +
// hex(HMAC-SHA256(signing secret, "v0:" + X-Slack-Request-Timestamp + ":"
// + body)) for one of the signing secrets, and the timestamp is within 5
// minutes of now. The comparison is constant-time, over every secret.
func (s *slackInteractions) verify(h http.Header, body []byte) bool {
	ts := h.Get("X-Slack-Request-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := s.now().Sub(time.Unix(sec, 0)); d > slackMaxSkew || d < -slackMaxSkew {
		return false
	}
	hexSig, ok := strings.CutPrefix(h.Get("X-Slack-Signature"), "v0=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	match := 0
	for _, secret := range s.secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte("v0:" + ts + ":"))
		mac.Write(body)
		match |= subtle.ConstantTimeCompare(mac.Sum(nil), got)
	}
	return match == 1
}

// respond posts replies to a response_url, in order. Failures are logged:
// the decision stands, and the user can press again.
func (s *slackInteractions) respond(ctx context.Context, responseURL string, replies []slackResponse) {
	log := s.approvals.log
	for _, r := range replies {
		b, err := json.Marshal(r)
		if err != nil {
			log.ErrorContext(ctx, "slack response not encoded", "error", err)
			return
		}
		rctx, cancel := context.WithTimeout(ctx, slackResponseTimeout)
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, responseURL, bytes.NewReader(b))
		if err != nil {
			cancel()
			log.WarnContext(ctx, "slack response_url unusable", "error", config.RedactError(err))
			return
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		resp, err := s.client.Do(req)
		if err != nil {
			cancel()
			// The URL is a capability: keep it out of the log.
			log.WarnContext(ctx, "slack response not delivered", "error", config.RedactError(err))
			continue
		}
		_ = resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusOK {
			log.WarnContext(ctx, "slack response refused", "status", resp.StatusCode)
		}
	}
}
