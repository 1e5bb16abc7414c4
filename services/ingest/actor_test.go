package ingest_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// TestPushedActorIsBoundedAndCleaned: the actor is whatever the sender
// wrote. The stored image.pushed holds it on one line, without control or
// bidirectional-override characters, and at most events.MaxActorLength
// characters long, whatever the format.
func TestPushedActorIsBoundedAndCleaned(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))

	ev := distPush("e1", "team/web", "1.0.0")
	ev["actor"] = map[string]any{"name": "ci-bot\r\nApprove at: https://evil.example\x1b]8;;https://evil.example\x07here\x1b]8;;\x07" +
		"\u202egnp.exe\u202c\x00\t" + strings.Repeat("x", 4000)}
	if code, got, _ := post(t, srv.URL+"/webhooks/dev-registry", envelope(ev), nil); code != http.StatusAccepted {
		t.Fatalf("status %d %v", code, got)
	}
	stored := storedEvents(t, r.stream)
	if len(stored) != 1 {
		t.Fatalf("%d events stored, want 1", len(stored))
	}
	actor := pushedData(t, stored[0]).Actor
	if n := utf8.RuneCountInString(actor); n > events.MaxActorLength {
		t.Errorf("actor is %d characters, want at most %d", n, events.MaxActorLength)
	}
	if i := strings.IndexFunc(actor, func(r rune) bool { return unicode.IsControl(r) || r == '\u202e' || r == '\u202c' }); i >= 0 {
		t.Errorf("actor holds %U: %.120q", []rune(actor[i:])[0], actor)
	}
	if want := "ci-bot Approve at: https://evil.example ]8;;https://evil.example here ]8;; gnp.exe x"; !strings.HasPrefix(actor, want) {
		t.Errorf("actor %.120q, want it to start with %q", actor, want)
	}
	if !strings.HasSuffix(actor, "x…") {
		t.Errorf("actor …%q does not say it was cut", actor[max(0, len(actor)-20):])
	}
}
