// Package slack is the notifier's Slack integration: an incoming webhook,
// or a bot token and channel through the Web API.
//
// # Webhook mode
//
// Each notification is one message, {text, blocks}, posted to the webhook
// (which posts to its own channel: a channel override from an app's
// slipway.notify label cannot be honoured, and fails permanently).
//
// # Bot mode
//
// chat.postMessage to the channel (Notification.Channel overrides the
// configured one). The messages of one release (Message.Thread, the image
// digest) form one thread: its parent is posted with the first message of
// the thread and shows the release's latest status ("apps/web 1.4.0 —
// deployed on vsphere-prd", kept current with chat.update); every message
// is a reply in that thread. The parent's channel id and ts are kept in the
// JetStream KV bucket slipway-slack-threads, key ThreadKey(receiver,
// channel, thread); entries expire 30 days after their last write. A
// message without a Thread is posted at the top level.
//
// # One parent per thread
//
// Creating a parent is "post, then record its ts", two systems without a
// shared transaction, so it is guarded by a claim:
//
//  1. Within a process, the messages of one thread are serialised (a lock
//     per thread key).
//  2. The creator first writes a claim with a compare-and-set create
//     (kv.Create). Of two replicas only one gets it; the other waits for
//     the claim to be resolved (watching the key, up to 15 s, then a
//     retryable error) and replies in the parent the winner recorded.
//  3. The winner posts the parent, carrying Slack message metadata
//     {event_type: slipway_thread, event_payload: {key}}, and replaces the
//     claim with the parent's ts (compare-and-set on the claim's revision).
//  4. A failure Slack answered (nothing was posted) releases the claim. A
//     failure without an answer (timeout, connection reset: the parent may
//     exist) marks the claim "unsure". A claim older than a minute was left
//     by a delivery that died between 2 and 3. An unsure or stale claim is
//     taken over (compare-and-set), and the taker first searches the
//     channel's history (conversations.history with metadata, from the
//     claim's time) for a parent with the thread's key: a parent that was
//     posted is found and recorded, not posted twice.
//
// The search needs the channel's id (remembered in the bucket from Slack's
// answers) and the channels:history / groups:history scope. Without them
// the taker posts a new parent and logs a warning: only then — a crash or
// timeout in the instant between posting a parent and recording it, on a
// bot without the history scope — can a thread get two parents. If the KV
// write of step 3 fails, the reply still goes to the parent just posted,
// and the next message finds it through the search.
//
// Before each reply the parent is updated (chat.update) to the message's
// status, unless it already shows a newer event; a parent that was deleted
// (message_not_found, thread_not_found) is replaced by a new one. The
// update comes before the reply, so that a failed update is retried
// without posting the reply twice.
//
// # Errors
//
// HTTP 429 and "ratelimited" are bus.RetryAfter with Slack's Retry-After;
// configuration and message errors (invalid_auth, not_authed,
// channel_not_found, not_in_channel, invalid_blocks, …) are bus.Permanent;
// 5xx, Slack's internal errors and timeouts are plain errors (retried).
// Errors are *Error (Method, Status, Code, RetryAfter) and never hold the
// token or the webhook URL.
//
// # Approvals
//
// With the receiver's signingSecret set, a Message.Approval adds an actions
// block (block_id slipway_approval) with the buttons Approve (action_id
// slipway_approve, primary) and Reject (slipway_reject, danger), whose value
// is the approval id; pkg/platform/slackmsg defines them. Slack sends
// the press to ingest's POST /slack/interactions, which decides the
// approval and replaces the message with who decided.
package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Kind is the integration's kind.
const Kind = "slack"

// defaultHTTPTimeout is the HTTP client's timeout when Options has none.
const defaultHTTPTimeout = 15 * time.Second

// receiver is one configured Slack receiver.
type receiver struct {
	name       string
	log        *slog.Logger
	client     *http.Client
	webhookURL string // webhook mode
	// buttons: Approve / Reject work only when ingest can verify Slack's
	// press, i.e. with the app's signing secret; without it they would do
	// nothing when pressed, so the message names the CLI instead.
	buttons bool
	channel string // bot mode: the configured channel
	api     *api
	threads *threads
	now     func() time.Time

	mu       sync.Mutex
	channels map[string]string // channel as configured → id, as Slack answered
}

// New returns the receiver of cfg.Slack. In bot mode it creates (or
// updates) the threads bucket, so o.JS is required.
func New(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error) {
	sc := cfg.Slack
	if sc == nil {
		return nil, fmt.Errorf("slack receiver %q: no slack configuration", name)
	}
	r := &receiver{
		name:     name,
		log:      o.Logger,
		client:   o.HTTPClient,
		now:      time.Now,
		channels: map[string]string{},
		buttons:  sc.SigningSecret != "",
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("receiver", name, "kind", Kind)
	if r.client == nil {
		r.client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	switch {
	case sc.WebhookURL != "" && sc.Token != "":
		return nil, fmt.Errorf("slack receiver %q: set webhookUrl or token, not both", name)
	case sc.WebhookURL != "":
		if _, err := url.Parse(sc.WebhookURL); err != nil {
			return nil, fmt.Errorf("slack receiver %q: webhookUrl is not a URL", name) // no detail: it is a secret
		}
		r.webhookURL = sc.WebhookURL
		return r, nil
	case sc.Token != "":
	default:
		return nil, fmt.Errorf("slack receiver %q: set webhookUrl, or token and channel", name)
	}
	base := strings.TrimRight(cmp.Or(sc.APIURL, DefaultAPIURL), "/")
	if _, err := url.Parse(base); err != nil {
		return nil, fmt.Errorf("slack receiver %q: apiUrl: %w", name, err)
	}
	if o.JS == nil {
		return nil, fmt.Errorf("slack receiver %q: the bot mode keeps its threads in JetStream, and there is none", name)
	}
	r.channel = sc.Channel
	r.api = &api{base: base, token: sc.Token, client: r.client}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := openThreads(ctx, o.JS, o.Replicas)
	if err != nil {
		return nil, fmt.Errorf("slack receiver %q: %w", name, err)
	}
	r.threads = t
	return r, nil
}

func (r *receiver) Name() string { return r.name }
func (r *receiver) Kind() string { return Kind }

// Notify posts n (see the package documentation).
func (r *receiver) Notify(ctx context.Context, n notify.Notification) error {
	if r.webhookURL != "" {
		return r.notifyWebhook(ctx, n)
	}
	return r.notifyBot(ctx, n)
}

// webhookMessage is an incoming webhook's payload.
type webhookMessage struct {
	Text   string  `json:"text"`
	Blocks []block `json:"blocks,omitempty"`
}

func (r *receiver) notifyWebhook(ctx context.Context, n notify.Notification) error {
	if n.Channel != "" {
		return bus.Permanent(fmt.Errorf("slack receiver %q posts through an incoming webhook, which posts to its own channel only; the channel %q (slipway.notify) needs a bot token", r.name, n.Channel))
	}
	return postWebhook(ctx, r.client, r.webhookURL, webhookMessage{Text: fallback(n.Message), Blocks: messageBlocks(n, r.buttons)})
}

// chatMessage is chat.postMessage's and chat.update's arguments.
type chatMessage struct {
	Channel     string    `json:"channel"`
	TS          string    `json:"ts,omitempty"`
	ThreadTS    string    `json:"thread_ts,omitempty"`
	Text        string    `json:"text"`
	Blocks      []block   `json:"blocks,omitempty"`
	Metadata    *metadata `json:"metadata,omitempty"`
	UnfurlLinks *bool     `json:"unfurl_links,omitempty"`
	UnfurlMedia *bool     `json:"unfurl_media,omitempty"`
}

type metadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// posted is chat.postMessage's answer.
type posted struct {
	answer
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// parent is a thread's parent message.
type parent struct {
	key, channel, ts string
	rev              uint64
	shown            time.Time
	// created is set when this call posted it (with the current status).
	created bool
}

func (r *receiver) notifyBot(ctx context.Context, n notify.Notification) error {
	channel := cmp.Or(n.Channel, r.channel)
	if channel == "" {
		return bus.Permanent(fmt.Errorf("slack receiver %q: no channel", r.name))
	}
	if n.Message.Thread == "" {
		_, err := r.post(ctx, chatMessage{Channel: channel, Text: fallback(n.Message), Blocks: messageBlocks(n, r.buttons)})
		return err
	}
	key := ThreadKey(r.name, channel, n.Message.Thread)
	unlock, err := r.threads.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()

	for attempt := 0; ; attempt++ {
		p, err := r.parent(ctx, key, channel, n)
		if err != nil {
			return err
		}
		if !p.created {
			err := r.updateParent(ctx, &p, n)
			if gone(err) && attempt == 0 {
				r.forget(ctx, p, err)
				continue
			}
			if err != nil {
				return err
			}
		}
		_, err = r.post(ctx, chatMessage{Channel: p.channel, ThreadTS: p.ts, Text: fallback(n.Message), Blocks: messageBlocks(n, r.buttons)})
		if gone(err) && attempt == 0 {
			r.forget(ctx, p, err)
			continue
		}
		return err
	}
}

// gone reports an error that says the parent no longer exists.
func gone(err error) bool {
	return IsCode(err, "message_not_found") || IsCode(err, "thread_not_found")
}

// forget drops the entry of a parent that was deleted in Slack, so that
// the next round creates a new one.
func (r *receiver) forget(ctx context.Context, p parent, cause error) {
	r.log.WarnContext(ctx, "slack thread parent is gone; starting a new one", "channel", p.channel, "ts", p.ts, "error", cause)
	if p.rev == 0 {
		return // never recorded
	}
	if err := r.threads.release(ctx, p.key, p.rev); err != nil {
		r.log.WarnContext(ctx, "slack thread entry not released", "error", err)
	}
}

func (r *receiver) post(ctx context.Context, m chatMessage) (posted, error) {
	no := false
	m.UnfurlLinks, m.UnfurlMedia = &no, &no
	var out posted
	err := r.api.post(ctx, "chat.postMessage", m, &out)
	if err == nil && out.Channel != "" && out.Channel != m.Channel {
		r.mu.Lock()
		r.channels[m.Channel] = out.Channel
		r.mu.Unlock()
	}
	return out, err
}

// parent returns the thread's parent, creating it if need be.
func (r *receiver) parent(ctx context.Context, key, channel string, n notify.Notification) (parent, error) {
	deadline := r.now().Add(claimWait)
	for {
		e, rev, ok, err := r.threads.get(ctx, key)
		if err != nil {
			return parent{}, err
		}
		if ok && e.resolved() {
			return parent{key: key, channel: e.Channel, ts: e.TS, rev: rev, shown: e.Shown}, nil
		}
		stale := ok && (e.Unsure || r.now().Sub(e.ClaimedAt) >= claimTTL)
		if !ok || stale {
			newRev, claimant, won, err := r.threads.claim(ctx, key, rev, r.now())
			if err != nil {
				return parent{}, err
			}
			if !won {
				continue // someone else claimed it first: read theirs
			}
			var since time.Time
			if stale {
				since = e.ClaimedAt
				r.log.InfoContext(ctx, "slack thread parent claim taken over", "key", key, "claimedAt", e.ClaimedAt, "unsure", e.Unsure)
			}
			return r.createParent(ctx, key, channel, newRev, claimant, since, stale, n)
		}
		// Another delivery (another replica) is posting the parent.
		if !r.now().Before(deadline) {
			return parent{}, fmt.Errorf("slack thread %s: its parent is being posted by another delivery since %s; retry", key, e.ClaimedAt.Format(time.RFC3339))
		}
		if err := r.threads.waitChange(ctx, key, rev, deadline); err != nil {
			return parent{}, err
		}
	}
}

// createParent posts the parent under the claim at rev; search (a
// taken-over claim) first searches the history for the parent a dead
// delivery may have posted since since.
func (r *receiver) createParent(ctx context.Context, key, channel string, rev uint64, claimant string, since time.Time, search bool, n notify.Notification) (parent, error) {
	if search {
		id, ts, err := r.findParent(ctx, key, channel, since)
		switch {
		case err != nil:
			r.log.WarnContext(ctx, "slack thread parent of an interrupted delivery cannot be searched for; posting a new one, there may be two",
				"key", key, "channel", channel, "error", err)
		case ts != "":
			r.log.InfoContext(ctx, "slack thread parent of an interrupted delivery found", "key", key, "channel", id, "ts", ts)
			p := parent{key: key, channel: id, ts: ts}
			if p.rev, err = r.threads.put(ctx, key, entry{Channel: id, TS: ts}, rev); err != nil {
				return parent{}, err
			}
			return p, nil
		}
	}

	pctx, cancel := context.WithTimeout(ctx, parentPostTimeout)
	out, err := r.post(pctx, chatMessage{
		Channel:  channel,
		Text:     parentText(n),
		Blocks:   parentBlocks(n),
		Metadata: &metadata{EventType: metadataType, EventPayload: map[string]any{"key": key}},
	})
	cancel()
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			// Slack answered: nothing was posted. Let the next attempt
			// claim at once.
			if rerr := r.threads.release(ctx, key, rev); rerr != nil {
				r.log.WarnContext(ctx, "slack thread claim not released", "key", key, "error", rerr)
			}
		} else {
			// No answer: the parent may exist. The next attempt searches.
			b := entry{ClaimedAt: r.now().UTC(), Claimant: claimant, Unsure: true}
			uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, uerr := r.threads.put(uctx, key, b, rev)
			ucancel()
			if uerr != nil {
				r.log.WarnContext(ctx, "slack thread claim not marked unsure; it is taken over when it is stale", "key", key, "error", uerr)
			}
		}
		return parent{}, err
	}
	p := parent{key: key, channel: out.Channel, ts: out.TS, created: true, shown: n.Event.Time()}
	if err := r.threads.rememberChannel(ctx, r.name, channel, out.Channel); err != nil {
		r.log.WarnContext(ctx, "slack channel id not remembered", "channel", channel, "error", err)
	}
	p.rev, err = r.threads.put(ctx, key, entry{Channel: out.Channel, TS: out.TS, Shown: p.shown}, rev)
	if err != nil {
		// The parent exists; reply in it. The claim stays, and the next
		// message of the thread finds this parent by its metadata.
		r.log.WarnContext(ctx, "slack thread parent posted but not recorded; the next message finds it in the history",
			"key", key, "channel", out.Channel, "ts", out.TS, "error", err)
	}
	return p, nil
}

// historyPage is conversations.history's answer.
type historyPage struct {
	answer
	Messages []struct {
		TS       string `json:"ts"`
		ThreadTS string `json:"thread_ts"`
		Metadata *struct {
			EventType    string         `json:"event_type"`
			EventPayload map[string]any `json:"event_payload"`
		} `json:"metadata"`
	} `json:"messages"`
	HasMore bool `json:"has_more"`
}

// findParent searches the channel's history since the claim's time for a
// parent with the thread's key; ts is "" when there is none.
func (r *receiver) findParent(ctx context.Context, key, channel string, since time.Time) (id, ts string, err error) {
	id = r.channelIDOf(ctx, channel)
	if id == "" {
		return "", "", fmt.Errorf("the id of channel %q is not known yet", channel)
	}
	q := url.Values{
		"channel":              {id},
		"include_all_metadata": {"true"},
		"limit":                {"200"},
	}
	if !since.IsZero() {
		q.Set("oldest", strconv.FormatInt(since.Add(-clockSkew).Unix(), 10)+".000000")
	}
	for range historyPages {
		var page historyPage
		if err := r.api.get(ctx, "conversations.history", q, &page); err != nil {
			return "", "", err
		}
		for _, m := range page.Messages {
			if m.Metadata != nil && m.Metadata.EventType == metadataType && m.Metadata.EventPayload["key"] == key {
				return id, m.TS, nil
			}
		}
		if !page.HasMore || page.ResponseMetadata.NextCursor == "" {
			return id, "", nil
		}
		q.Set("cursor", page.ResponseMetadata.NextCursor)
	}
	return "", "", fmt.Errorf("more than %d pages of history since %s", historyPages, since.Format(time.RFC3339))
}

// channelIDOf returns the id of a channel as configured: known from a post,
// remembered in the bucket, or the channel itself when it is an id.
func (r *receiver) channelIDOf(ctx context.Context, channel string) string {
	r.mu.Lock()
	id := r.channels[channel]
	r.mu.Unlock()
	if id != "" {
		return id
	}
	if id := r.threads.channelID(ctx, r.name, channel); id != "" {
		return id
	}
	if looksLikeID(channel) {
		return channel
	}
	return ""
}

// looksLikeID reports a Slack conversation id: C…, G… or D… in upper case
// letters and digits.
func looksLikeID(s string) bool {
	if len(s) < 9 || !strings.ContainsRune("CGD", rune(s[0])) {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// updateParent shows n's status on the parent, unless the parent shows a
// newer event already. Only a rate limit, a transient failure, or a
// parent that is gone are errors: a parent that cannot be edited does not
// hold up the reply.
func (r *receiver) updateParent(ctx context.Context, p *parent, n notify.Notification) error {
	at := n.Event.Time()
	if !p.shown.IsZero() && at.Before(p.shown) {
		return nil
	}
	err := r.api.post(ctx, "chat.update", chatMessage{Channel: p.channel, TS: p.ts, Text: parentText(n), Blocks: parentBlocks(n)}, nil)
	switch {
	case gone(err):
		return err
	case bus.IsPermanent(err):
		r.log.WarnContext(ctx, "slack thread parent not updated", "channel", p.channel, "ts", p.ts, "error", err)
		return nil
	case err != nil:
		return err
	}
	rev, err := r.threads.put(ctx, p.key, entry{Channel: p.channel, TS: p.ts, Shown: at}, p.rev)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			r.log.DebugContext(ctx, "slack thread status time not recorded", "key", p.key, "error", err)
		}
		return nil
	}
	p.rev, p.shown = rev, at
	return nil
}
