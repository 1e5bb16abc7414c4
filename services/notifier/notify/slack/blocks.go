package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/slackmsg"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render/markup"
)

// Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
const (
	maxSectionText = 3000
	maxFields      = 10
	maxFieldText   = 2000
	maxBlocks      = 50
	// maxFallbackText keeps the top-level text well under Slack's 40,000.
	maxFallbackText = 3000
)

// block is one Block Kit block; only the fields Slipway uses.
type block struct {
	Type     string `json:"type"`
	BlockID  string `json:"block_id,omitempty"`
	Text     *text  `json:"text,omitempty"`
	Fields   []text `json:"fields,omitempty"`
	Elements []any  `json:"elements,omitempty"`
}

// text is a Block Kit text object, mrkdwn or plain_text.
type text struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// button is a Block Kit button element.
type button struct {
	Type     string `json:"type"`
	Text     text   `json:"text"`
	ActionID string `json:"action_id"`
	Value    string `json:"value"`
	Style    string `json:"style,omitempty"`
}

func mrkdwn(s string, limit int) *text { return &text{Type: "mrkdwn", Text: truncate(s, limit)} }

// escape makes text from an event literal in mrkdwn.
func escape(s string) string { return markup.Slack(s) }

// truncate cuts s to at most n characters (runes), marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// emoji shows a message's severity.
func emoji(severity string) string {
	switch severity {
	case notify.Good:
		return ":white_check_mark:"
	case notify.Warning:
		return ":warning:"
	case notify.Danger:
		return ":x:"
	default:
		return ":information_source:"
	}
}

// context is what a message says about where and when: the environment,
// the cluster of a deployment, the event time.
type eventContext struct {
	Environment, Cluster string
	Time                 time.Time
}

func contextOf(e events.Event) eventContext {
	c := eventContext{Environment: events.EnvironmentOf(e), Time: e.Time()}
	if len(e.Data()) > 0 {
		var d struct {
			Cluster string `json:"cluster"`
		}
		if json.Unmarshal(e.Data(), &d) == nil {
			c.Cluster = d.Cluster
		}
	}
	return c
}

// contextBlock is the context line: environment, cluster, time (in the
// reader's time zone, Slack's date formatting).
func (c eventContext) block(extra ...string) block {
	var parts []string
	if c.Environment != "" {
		parts = append(parts, "*"+escape(c.Environment)+"*")
	}
	if c.Cluster != "" {
		parts = append(parts, escape(c.Cluster))
	}
	if !c.Time.IsZero() {
		parts = append(parts, fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", c.Time.Unix(), c.Time.UTC().Format(time.RFC3339)))
	}
	parts = append(parts, extra...)
	if len(parts) == 0 {
		parts = []string{"Slipway"}
	}
	return block{Type: "context", Elements: []any{mrkdwn(strings.Join(parts, "  ·  "), maxSectionText)}}
}

// messageBlocks renders a notification: the title with its status emoji,
// the text, the facts as fields, the link, the context, and the Approve /
// Reject buttons of an approval.
func messageBlocks(n notify.Notification, buttons bool) []block {
	m := n.Message
	head := emoji(m.Severity) + " *" + escape(m.Title) + "*"
	if m.Text != "" {
		head += "\n" + escape(m.Text)
	}
	blocks := []block{{Type: "section", Text: mrkdwn(head, maxSectionText)}}
	for i := 0; i < len(m.Facts) && len(blocks) < maxBlocks-3; i += maxFields {
		var fields []text
		for _, f := range m.Facts[i:min(i+maxFields, len(m.Facts))] {
			fields = append(fields, *mrkdwn("*"+escape(f.Name)+"*\n"+escape(orDash(f.Value)), maxFieldText))
		}
		blocks = append(blocks, block{Type: "section", Fields: fields})
	}
	var extra []string
	if m.Link != "" {
		extra = append(extra, "<"+markup.SlackURL(m.Link)+"|Details>")
	}
	a := m.Approval
	if a != nil && a.ID != "" && !buttons {
		extra = append(extra, "Decide with `slipway approvals approve "+escape(a.ID)+"` or `slipway approvals reject "+escape(a.ID)+"`")
	}
	blocks = append(blocks, contextOf(n.Event).block(extra...))
	if a != nil && a.ID != "" && buttons {
		// The buttons of ingest's POST /slack/interactions (slackmsg).
		blocks = append(blocks, block{Type: "actions", BlockID: slackmsg.ApprovalBlockID, Elements: []any{
			button{Type: "button", Text: text{Type: "plain_text", Text: "Approve", Emoji: true}, ActionID: slackmsg.ActionApprove, Value: slackmsg.ButtonValue(a.ID), Style: "primary"},
			button{Type: "button", Text: text{Type: "plain_text", Text: "Reject", Emoji: true}, ActionID: slackmsg.ActionReject, Value: slackmsg.ButtonValue(a.ID), Style: "danger"},
		}})
	}
	return blocks
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// fallback is a message's top-level text: notifications and screen
// readers show it. Slack parses it as mrkdwn like the blocks: escaped, so
// that a <!channel> in an event pings no one.
func fallback(m notify.Message) string {
	s := m.Title
	if m.Text != "" {
		s += "\n" + m.Text
	}
	return escape(truncate(s, maxFallbackText))
}

// statusLine is what a thread's parent says about the latest message:
// "deployed on vsphere-prd", "promoted to prd".
func statusLine(n notify.Notification) string {
	status := n.Message.Status
	if status == "" {
		status = n.Message.Title
	}
	c := contextOf(n.Event)
	switch {
	case c.Cluster != "":
		return status + " on " + c.Cluster
	case c.Environment != "":
		return status + " in " + c.Environment
	}
	return status
}

// parentText is the parent's text: "apps/web 1.4.0 — deployed on
// vsphere-prd".
func parentText(n notify.Notification) string {
	title := n.Message.ThreadTitle
	if title == "" {
		title = n.Message.Title
	}
	return escape(truncate(title+" — "+statusLine(n), maxFallbackText))
}

// parentBlocks renders a thread's parent with the latest status.
func parentBlocks(n notify.Notification) []block {
	title := n.Message.ThreadTitle
	if title == "" {
		title = n.Message.Title
	}
	head := emoji(n.Message.Severity) + " *" + escape(title) + "* — " + escape(statusLine(n))
	c := contextOf(n.Event)
	c.Cluster = "" // in the status line already
	return []block{
		{Type: "section", Text: mrkdwn(head, maxSectionText)},
		c.block("updates in the thread"),
	}
}
