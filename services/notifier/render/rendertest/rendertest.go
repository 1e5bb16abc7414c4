// Package rendertest gives the integrations' tests events whose payload
// text is hostile markup, and the checks every integration's output must
// pass: what a payload says is shown, never acted on.
package rendertest

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render"
)

// Payload texts that try to make a notification act: ping everyone and hide
// a link behind a label in Slack, a Markdown link in Teams, HTML in e-mail,
// and control characters (a terminal escape, NUL, a bidi override, a line
// break that forges another line).
const (
	SlackPing    = "<!channel> <https://evil.example|Approve here>"
	MarkdownLink = "[Approve here](https://evil.example)"
	HTMLTag      = "<b>x</b>"
	Controls     = "\x1b[2J\x00\u202egnp.exe\r\nApprove at: https://evil.example"
	// Hostile is all of them in one value.
	Hostile = SlackPing + " " + MarkdownLink + " " + HTMLTag + " " + Controls
)

// EvilHost is the host every hostile link points to.
const EvilHost = "evil.example"

// Notifications are rendered (render.Default) image.pushed,
// approval.rejected and deployment.failed events whose actor, repository,
// tag, approver and reasons carry Hostile: what the notifier hands an
// integration.
func Notifications(t testing.TB) []notify.Notification {
	t.Helper()
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	digest := "sha256:" + strings.Repeat("ab", 32)
	specs := []events.Spec{
		{Type: events.TypeImagePushed, Environment: "dev", Subject: "registry.dev.example/apps/web:1.4.0@" + digest,
			Data: events.ImagePushed{Environment: "dev", Registry: "registry.dev.example", Repository: "apps/" + SlackPing,
				Tag: MarkdownLink, Digest: digest, Actor: Hostile, Source: "dev-registry", Format: "distribution", PushedAt: at}},
		{Type: events.TypeApprovalRejected, Environment: "prd", Subject: "registry.prd.example/apps/web:1.4.0@" + digest,
			Data: events.ApprovalDecision{ApprovalID: "apr-1", Promotion: "tst-to-prd", By: SlackPing, Reason: Hostile}},
		{Type: events.TypeDeploymentFailed, Environment: "prd", Subject: "vsphere-prd:/apps/web",
			Data: events.Deployment{Cluster: "vsphere-prd", Environment: "prd", AppID: "/apps/web",
				ToImage: "registry.prd.example/apps/web:1.4.0", Digest: digest, Reason: Hostile}},
	}
	var out []notify.Notification
	for i, s := range specs {
		s.ID = events.ID("rendertest", string(s.Type), t.Name())
		s.Source = "/slipway/test"
		s.Time = at.Add(time.Duration(i) * time.Minute)
		e, err := events.New(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, notify.Notification{Event: e, Message: render.Default(e)})
	}
	return out
}

// NoControls fails t when s (what a receiver got, decoded) holds a control
// character other than a line break, or a bidi override.
func NoControls(t testing.TB, where, s string) {
	t.Helper()
	if i := strings.IndexFunc(s, func(r rune) bool {
		return (unicode.IsControl(r) && r != '\n' && r != '\r') || r == '\u202e'
	}); i >= 0 {
		t.Errorf("%s holds %U: %.200q", where, []rune(s[i:])[0], s)
	}
}
