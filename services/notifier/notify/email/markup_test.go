package email_test

import (
	"mime"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/services/notifier/render/rendertest"
)

// TestPayloadMarkupIsShownNotActedOn: an actor, repository, tag, approver
// or reason that holds HTML, links or control characters reaches the mail
// as text: escaped in the HTML part (the default template's and the one
// made from the text when there is none), without control characters in
// the subject and the text part, and unable to start a line of its own
// ("Approve at: …") in the text part's list of facts.
func TestPayloadMarkupIsShownNotActedOn(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	for _, n := range rendertest.Notifications(t) {
		for _, withHTML := range []bool{true, false} {
			if !withHTML {
				n.Message.HTML = ""
			}
			if err := r.Notify(t.Context(), n); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			p := parse(t, relay.next(t).data)
			subject, err := new(mime.WordDecoder).DecodeHeader(p.header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			rendertest.NoControls(t, "subject", subject)
			if strings.ContainsAny(subject, "\r\n") {
				t.Errorf("subject %q is more than one line", subject)
			}
			rendertest.NoControls(t, "text part", p.text)
			for line := range strings.SplitSeq(p.text, "\r\n") {
				if strings.HasPrefix(line, "Approve at:") {
					t.Errorf("a payload forged the line %q in the text part:\n%s", line, p.text)
				}
			}
			if !strings.Contains(p.text, rendertest.SlackPing) {
				t.Errorf("text part does not show %q:\n%s", rendertest.SlackPing, p.text)
			}
			rendertest.NoControls(t, "html part", p.html)
			if strings.Contains(p.html, rendertest.HTMLTag) || strings.Contains(p.html, `href="https://`+rendertest.EvilHost) {
				t.Errorf("html part carries markup from the payload:\n%s", p.html)
			}
			if !strings.Contains(p.html, "&lt;b&gt;x&lt;/b&gt;") {
				t.Errorf("html part does not show %q:\n%s", rendertest.HTMLTag, p.html)
			}
		}
	}
}
