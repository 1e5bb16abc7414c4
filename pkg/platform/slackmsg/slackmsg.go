// Package slackmsg is what Slipway's two ends of a Slack message agree on.
// The notifier writes the messages (an approval.requested one with Approve
// and Reject buttons); ingest receives the presses of those buttons on
// POST /slack/interactions and rewrites the message with who decided. The
// buttons' ids, how a button names its approval, and how text is made
// literal in mrkdwn are defined here once, so the two cannot drift apart.
package slackmsg

import (
	"strings"

	"github.com/slipway-cd/slipway/pkg/platform/plaintext"
)

// The approval buttons (contract: messages already posted keep these ids,
// and a press of one reaches whatever Slipway runs then, so a change
// strands every button in Slack).
const (
	// ApprovalBlockID is the block_id of the actions block that holds the
	// buttons; ingest drops that block from a decided message.
	ApprovalBlockID = "slipway_approval"
	// ActionApprove is the action_id of the Approve button.
	ActionApprove = "slipway_approve"
	// ActionReject is the action_id of the Reject button.
	ActionReject = "slipway_reject"
)

// ButtonValue is the value of both approval buttons of approval id: the id
// as it is. Slack hands it back unchanged with a press (Press).
func ButtonValue(approvalID string) string { return approvalID }

// Press reads the press of a button (its action_id and value): the approval
// it decides and whether it grants it; ok is false for an action that is
// not one of the approval buttons.
func Press(actionID, value string) (approvalID string, grant, ok bool) {
	switch actionID {
	case ActionApprove:
		return value, true, true
	case ActionReject:
		return value, false, true
	}
	return "", false, false
}

// IsApprovalButton reports whether actionID is one of the approval buttons.
func IsApprovalButton(actionID string) bool {
	_, _, ok := Press(actionID, "")
	return ok
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape is s for Slack's mrkdwn: a message's top-level text and the mrkdwn
// text objects of its blocks. s is first cleaned (plaintext.Clean: no
// control characters but line breaks, no bidirectional overrides). Slack
// reads only &, < and > as markup (<!channel>, <@U…>, <#C…>, <url|label>,
// <!date…>) and asks for exactly these three to be escaped as HTML entities
// (https://api.slack.com/reference/surfaces/formatting#escaping); no other
// entity is decoded.
//
// *bold*, _italic_, ~strike~ and `code` stay: mrkdwn has no escape for
// them, and the usual trick (invisible characters around them) would put
// those characters into every repository name and tag people copy from a
// message. They can only change how text looks, never ping, link or hide
// text.
func Escape(s string) string { return escaper.Replace(plaintext.Clean(s)) }
