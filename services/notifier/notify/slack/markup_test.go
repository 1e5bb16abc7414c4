package slack_test

import (
	"html"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier/render/rendertest"
)

// TestPayloadMarkupIsShownNotActedOn: an actor, repository, tag, approver
// or reason that holds mrkdwn (<!channel>, <https://…|label>) reaches
// Slack escaped, in the top-level text (what notifications show), in the
// blocks and in a thread's parent, through a webhook and the bot alike.
func TestPayloadMarkupIsShownNotActedOn(t *testing.T) {
	r := newRig(t)
	hook := webhook(t, r.slack, r.slack.WebhookURL(t, payments))
	bot := r.bot(t, token)
	for _, n := range rendertest.Notifications(t) {
		if err := hook.Notify(t.Context(), n); err != nil {
			t.Fatalf("webhook: %v", err)
		}
		if err := bot.Notify(t.Context(), n); err != nil {
			t.Fatalf("bot: %v", err)
		}
	}
	msgs := append(r.slack.Messages(payments), r.slack.Messages(deploys)...)
	if len(msgs) < 6 {
		t.Fatalf("%d messages, want at least 6", len(msgs))
	}
	for _, m := range msgs {
		checkShownNotActedOn(t, m)
	}
}

func checkShownNotActedOn(t *testing.T, m testkit.SlackMessage) {
	t.Helper()
	where := m.Via + " message " + m.TS
	var acted []string
	for _, tok := range m.Markup() {
		// The only markup Slipway writes itself here: the event's date.
		if (!strings.HasPrefix(tok, "<!date^") || strings.Contains(tok, rendertest.EvilHost)) && !slices.Contains(acted, tok) {
			acted = append(acted, tok)
		}
	}
	if len(acted) > 0 {
		t.Errorf("%s: Slack acts on %q\ntext: %.200q", where, acted, m.Text)
	}
	rendertest.NoControls(t, where+" text", m.Text)
	rendertest.NoControls(t, where+" blocks", m.Content())
	// Shown as typed, once Slack decoded &lt; &gt; &amp; (a thread's parent
	// shows the release and its status only).
	if shown := html.UnescapeString(m.Content()); m.Metadata == nil && !strings.Contains(shown, rendertest.SlackPing) {
		t.Errorf("%s does not show %q:\n%s", where, rendertest.SlackPing, shown)
	}
}
