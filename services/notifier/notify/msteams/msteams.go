// Package msteams posts notifications to Microsoft Teams through a Workflows
// webhook (the Power Automate trigger "When a Teams webhook request is
// received"; the Office 365 connectors it replaces are retired).
//
// The request is the documented Workflows shape: a "message" with one
// Adaptive Card attachment:
//
//	{"type": "message", "attachments": [{
//	  "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
//	  "content": {"type": "AdaptiveCard", "version": "1.4", "body": […], "actions": […]}}]}
//
// The card holds the title (bold, coloured by severity), the text, the facts
// as a FactSet and, when the message has a link, an Action.OpenUrl. Workflows
// answers 202 Accepted once the flow has been triggered.
//
// A Workflows webhook posts to the channel chosen in the flow, so the
// notification's Channel (an app's slipway.notify label) cannot redirect it
// and is ignored.
package msteams

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render/markup"
)

// Kind is the integration's name.
const Kind = "msteams"

// Media types of the request.
const (
	ContentTypeJSON     = "application/json"
	ContentTypeAdaptive = "application/vnd.microsoft.card.adaptive"
	// CardVersion is the Adaptive Card schema version used. Teams renders
	// 1.5, but 1.4 is what every Teams client (desktop, web, mobile) and
	// Outlook render the same way.
	CardVersion = "1.4"
	cardSchema  = "http://adaptivecards.io/schemas/adaptive-card.json"
)

const maxErrorBody = 512

// Receiver posts Adaptive Cards to one Workflows webhook.
type Receiver struct {
	name   string
	url    *url.URL
	client *http.Client
	log    *slog.Logger
}

var _ notify.Receiver = (*Receiver)(nil)

// New builds the receiver for cfg.MSTeams.
func New(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error) {
	if cfg.MSTeams == nil {
		return nil, fmt.Errorf("msteams receiver %q: no msteams configuration", name)
	}
	raw := strings.TrimSpace(cfg.MSTeams.WebhookURL)
	if raw == "" {
		return nil, fmt.Errorf("msteams receiver %q: webhookUrl is required", name)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Do not echo the URL: its query carries the flow's signature.
		return nil, fmt.Errorf("msteams receiver %q: webhookUrl must be an absolute http(s) URL", name)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Receiver{name: name, url: u, client: client, log: log.With("receiver", name, "kind", Kind)}, nil
}

// Name implements notify.Receiver.
func (r *Receiver) Name() string { return r.name }

// Kind implements notify.Receiver.
func (r *Receiver) Kind() string { return Kind }

// Notify posts the card and returns nil once Workflows accepted it.
func (r *Receiver) Notify(ctx context.Context, n notify.Notification) error {
	body, err := json.Marshal(payload(n.Message))
	if err != nil {
		return bus.Permanent(fmt.Errorf("msteams: encode card: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url.String(), bytes.NewReader(body))
	if err != nil {
		return bus.Permanent(fmt.Errorf("msteams: build request: %w", config.RedactError(err)))
	}
	req.Header.Set("Content-Type", ContentTypeJSON)
	req.Header.Set("Accept", ContentTypeJSON)
	resp, err := r.client.Do(req)
	if err != nil {
		// Connection errors and timeouts are retried. The error of
		// http.Client names the URL, whose path and query hold the flow's
		// signature.
		return fmt.Errorf("msteams: %w", config.RedactError(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	d := httpretry.Classify(resp.StatusCode, resp.Header, time.Now())
	if d.Outcome == httpretry.Success {
		r.log.DebugContext(ctx, "card posted", "event_id", n.Event.ID(), "status", resp.StatusCode)
		return nil
	}
	// A 4xx is a malformed card, a revoked or deleted flow or a payload too
	// large: the same request can never succeed (httpretry's rule).
	err = fmt.Errorf("msteams: %s answered %s: %s", config.RedactSecretURL(r.url.String()), resp.Status,
		strings.ToValidUTF8(strings.TrimSpace(string(snippet)), ""))
	return notify.Refused(err, d)
}

// payload is the Workflows request body for m.
func payload(m notify.Message) message {
	return message{
		Type: "message",
		Attachments: []attachment{{
			ContentType: ContentTypeAdaptive,
			ContentURL:  nil,
			Content:     card(m),
		}},
	}
}

// card renders m as an Adaptive Card.
func card(m notify.Message) adaptiveCard {
	title := strings.TrimSpace(m.Title)
	if title == "" {
		title = m.Status
	}
	if title == "" {
		title = "Slipway notification"
	}
	// TextBlocks and facts are Markdown in Teams: everything from the
	// message is escaped, so that text from an event is never a link.
	body := []element{{
		Type:   "TextBlock",
		Text:   markup.Teams(title),
		Weight: "Bolder",
		Size:   "Medium",
		Color:  color(m.Severity),
		Wrap:   true,
	}}
	if text := strings.TrimSpace(m.Text); text != "" {
		body = append(body, element{Type: "TextBlock", Text: markup.Teams(text), Wrap: true})
	}
	if len(m.Facts) > 0 {
		facts := make([]fact, 0, len(m.Facts))
		for _, f := range m.Facts {
			if f.Name == "" && f.Value == "" {
				continue
			}
			facts = append(facts, fact{Title: markup.Teams(f.Name), Value: markup.Teams(f.Value)})
		}
		if len(facts) > 0 {
			body = append(body, element{Type: "FactSet", Facts: facts})
		}
	}
	if a := m.Approval; a != nil && a.ID != "" {
		// Workflows cards cannot call the approval API with an approver's
		// token, so point at the CLI instead of offering buttons.
		body = append(body, element{
			Type: "TextBlock", Wrap: true, IsSubtle: true, Spacing: "Medium",
			Text: markup.Teams(fmt.Sprintf("Decide with: slipway approvals approve %s, or: slipway approvals reject %s", a.ID, a.ID)),
		})
	}
	c := adaptiveCard{
		Schema:  cardSchema,
		Type:    "AdaptiveCard",
		Version: CardVersion,
		Body:    body,
		MSTeams: &teamsProps{Width: "Full"},
	}
	if link := strings.TrimSpace(m.Link); link != "" {
		if u, err := url.Parse(link); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			c.Actions = []action{{Type: "Action.OpenUrl", Title: "Details", URL: link}}
		}
	}
	return c
}

// color maps a notify severity to an Adaptive Card TextBlock colour.
func color(severity string) string {
	switch severity {
	case notify.Good:
		return "Good"
	case notify.Warning:
		return "Warning"
	case notify.Danger:
		return "Attention"
	default:
		return "Accent"
	}
}

// message is the Workflows request body.
type message struct {
	Type        string       `json:"type"`
	Attachments []attachment `json:"attachments"`
}

// attachment carries one card.
type attachment struct {
	ContentType string       `json:"contentType"`
	ContentURL  *string      `json:"contentUrl"`
	Content     adaptiveCard `json:"content"`
}

// adaptiveCard is the subset of the Adaptive Card schema Slipway uses.
type adaptiveCard struct {
	Schema  string      `json:"$schema"`
	Type    string      `json:"type"`
	Version string      `json:"version"`
	Body    []element   `json:"body"`
	Actions []action    `json:"actions,omitempty"`
	MSTeams *teamsProps `json:"msteams,omitempty"`
}

// teamsProps are Teams-specific card properties.
type teamsProps struct {
	Width string `json:"width,omitempty"`
}

// element is a TextBlock or a FactSet.
type element struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Weight   string `json:"weight,omitempty"`
	Size     string `json:"size,omitempty"`
	Color    string `json:"color,omitempty"`
	Spacing  string `json:"spacing,omitempty"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
	Wrap     bool   `json:"wrap,omitempty"`
	Facts    []fact `json:"facts,omitempty"`
}

// fact is one row of a FactSet.
type fact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// action is an Action.OpenUrl.
type action struct {
	Type  string `json:"type"`
	Title string `json:"title,omitempty"`
	URL   string `json:"url"`
}
