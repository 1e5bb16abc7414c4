package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api"

// defaultRetryAfter is the wait after a rate limit answer without a usable
// Retry-After (Slack always sends one; a proxy might not).
const defaultRetryAfter = 5 * time.Second

// maxAnswer bounds what is read of an answer.
const maxAnswer = 1 << 20

// Error is an answer of Slack that is not a success: a Web API call with
// {"ok": false}, or an HTTP status other than 200. It never holds a token
// or a webhook URL.
type Error struct {
	// Method is the Web API method (chat.postMessage, chat.update,
	// conversations.history), or "webhook" for an incoming webhook.
	Method string
	// Status is the HTTP status of the answer.
	Status int
	// Code is Slack's error code (channel_not_found, invalid_blocks,
	// ratelimited, …), or the body of a webhook's answer; "" when there is
	// none.
	Code string
	// Messages are Slack's explanations (response_metadata.messages), for
	// invalid_blocks.
	Messages []string
	// RetryAfter is the wait Slack asked for (a rate limit, or a retryable
	// answer with Retry-After), else 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "slack %s: ", e.Method)
	switch {
	case e.Code != "" && e.Status != http.StatusOK:
		fmt.Fprintf(&b, "%s (HTTP %d)", e.Code, e.Status)
	case e.Code != "":
		b.WriteString(e.Code)
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if len(e.Messages) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(e.Messages, "; "))
	}
	return b.String()
}

// permanentCodes are Slack errors no retry can fix: the configuration
// (token, channel, scopes, membership) or the message is wrong.
var permanentCodes = map[string]bool{
	"not_authed": true, "invalid_auth": true, "account_inactive": true, "token_revoked": true,
	"token_expired": true, "no_permission": true, "missing_scope": true, "not_allowed_token_type": true,
	"team_access_not_granted": true, "ekm_access_denied": true, "access_denied": true,
	"channel_not_found": true, "not_in_channel": true, "is_archived": true, "channel_is_archived": true,
	"restricted_action": true, "restricted_action_read_only_channel": true,
	"restricted_action_thread_only_channel": true, "restricted_action_non_threadable_channel": true,
	"invalid_blocks": true, "invalid_blocks_format": true, "invalid_attachments": true,
	"too_many_attachments": true, "msg_too_long": true, "msg_blocks_too_long": true, "no_text": true,
	"invalid_arguments": true, "invalid_json": true, "json_not_object": true, "invalid_form_data": true,
	"invalid_charset": true, "invalid_post_type": true, "invalid_metadata_format": true,
	"invalid_metadata_schema": true, "metadata_too_large": true, "metadata_must_be_sent_from_app": true,
	"method_deprecated": true, "deprecated_endpoint": true, "unknown_method": true,
	"cant_update_message": true, "edit_window_closed": true, "as_user_not_supported": true,
	// Incoming webhooks answer with these as plain text.
	"invalid_payload": true, "no_service": true, "no_service_id": true, "no_team": true,
	"team_disabled": true, "action_prohibited": true, "posting_to_general_channel_denied": true,
	"no_active_hooks": true, "invalid_token": true, "user_not_found": true,
}

// classify wraps a Slack answer with header h as the notifier's contract
// asks: rate limits with their Retry-After, Slack's codes for what no retry
// fixes as permanent, and the rest by the HTTP status (httpretry's rule: a
// 4xx without a code we know is a mistyped apiUrl or a wrong request, 5xx
// and Slack's internal errors are retried).
func classify(e *Error, h http.Header) error {
	d := httpretry.Classify(e.Status, h, time.Now())
	switch {
	case e.Status == http.StatusTooManyRequests || e.Code == "ratelimited" || e.Code == "rate_limited":
		// Slack says when; a rate limit in a 200's body still counts.
		after, ok := httpretry.ParseRetryAfter(h.Get("Retry-After"), time.Now())
		if !ok {
			after = defaultRetryAfter
		}
		e.RetryAfter = after
		return bus.RetryAfter(e, after)
	case permanentCodes[e.Code]:
		return bus.Permanent(e)
	}
	e.RetryAfter = d.After
	return notify.Refused(e, d)
}

// IsCode reports whether err is, or wraps, Slack's error code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// transportError redacts the URL of an HTTP client error: a webhook URL
// is a secret, and errors end up in logs and notification.failed events.
func transportError(what string, err error) error {
	return fmt.Errorf("slack %s: %w", what, config.RedactError(err))
}

// api calls Slack's Web API with a bot token.
type api struct {
	base   string
	token  string
	client *http.Client
}

// answer is the envelope of every Web API answer.
type answer struct {
	OK               bool   `json:"ok"`
	Error            string `json:"error"`
	ResponseMetadata struct {
		Messages   []string `json:"messages"`
		NextCursor string   `json:"next_cursor"`
	} `json:"response_metadata"`
}

// post calls a write method with a JSON body and decodes the answer into
// out (which embeds answer, or is nil).
func (a *api) post(ctx context.Context, method string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return bus.Permanent(fmt.Errorf("slack %s: %w", method, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/"+method, bytes.NewReader(b))
	if err != nil {
		return bus.Permanent(fmt.Errorf("slack %s: %w", method, err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	return a.do(req, method, out)
}

// get calls a read method with query arguments.
func (a *api) get(ctx context.Context, method string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/"+method+"?"+q.Encode(), nil)
	if err != nil {
		return bus.Permanent(fmt.Errorf("slack %s: %w", method, err))
	}
	return a.do(req, method, out)
}

func (a *api) do(req *http.Request, method string, out any) error {
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return transportError(method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return transportError(method, err)
	}
	var env answer
	jsonErr := json.Unmarshal(raw, &env)
	if resp.StatusCode != http.StatusOK || jsonErr != nil || !env.OK {
		return classify(&Error{
			Method: method, Status: resp.StatusCode, Code: env.Error,
			Messages: env.ResponseMetadata.Messages,
		}, resp.Header)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("slack %s: decoding the answer: %w", method, err)
		}
	}
	return nil
}

// postWebhook posts a message to an incoming webhook, which answers "ok"
// or an error code as plain text.
func postWebhook(ctx context.Context, client *http.Client, webhookURL string, body any) error {
	const what = "webhook"
	b, err := json.Marshal(body)
	if err != nil {
		return bus.Permanent(fmt.Errorf("slack %s: %w", what, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, bytes.NewReader(b))
	if err != nil {
		return bus.Permanent(transportError(what, err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return transportError(what, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	code := strings.TrimSpace(string(raw))
	if len(code) > 200 || strings.ContainsAny(code, "<>\n") {
		code = "" // an HTML error page, not Slack's code
	}
	return classify(&Error{Method: what, Status: resp.StatusCode, Code: code}, resp.Header)
}
