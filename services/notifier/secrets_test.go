package notifier_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier"
)

// syncBuffer is a log destination the notifier's goroutines share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A Slack or Teams webhook URL is a secret as a whole (its path, or its
// sig= query, lets anyone post to the channel): a receiver that cannot be
// reached is named in logs, notification.failed and the dead letters by
// scheme and host only.
func TestUnreachableWebhookURLsStayOutOfLogsAndEvents(t *testing.T) {
	down := testkit.FreeAddr(t) // nothing listens: connection refused
	secrets := []string{"T0SLACKTEAM", "B0SLACKHOOK", "slackpathsecret", "teamsflowsecret", "teamssigsecret", "hookquerysecret", "hookpathsecret"}
	e := newEnv(t, fmt.Sprintf(`
  receivers:
    - { name: team-slack, slack: { webhookUrl: "http://%[1]s/services/T0SLACKTEAM/B0SLACKHOOK/slackpathsecret" } }
    - { name: team-teams, msteams: { webhookUrl: "http://%[1]s/workflows/teamsflowsecret/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%%2Ftriggers%%2Fmanual%%2Frun&sv=1.0&sig=teamssigsecret" } }
    - { name: audit, webhook: { url: "http://%[1]s/hookpathsecret?token=hookquerysecret" } }
  routes:
    - match: { types: [image.pushed] }
      receivers: [team-slack, team-teams, audit]
`, down))
	var logs syncBuffer
	d := appDeps(e)
	d.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := &notifier.Service{MaxDeliver: 2, BackOff: []time.Duration{10 * time.Millisecond}}
	e.startWith(svc, d)
	e.publish(pushedEvent(t, "dev", "3.0.0"))

	failedFilter := events.FilterSubject(events.TypeNotificationFailed, "")
	testkit.WaitFor(t, "a notification.failed from each receiver", func() bool {
		return len(messages(t, e.js, bus.DefaultStream, failedFilter)) == 3
	})
	dlq := bus.DeadLetterStreamName(bus.DefaultStream)
	testkit.WaitFor(t, "the event dead-lettered by each receiver", func() bool {
		return len(messages(t, e.js, dlq, ">")) >= 3
	})
	e.drained()

	var stored strings.Builder
	for _, stream := range []string{bus.DefaultStream, dlq} {
		for _, m := range messages(t, e.js, stream, ">") {
			fmt.Fprintf(&stored, "%s %v %s\n", m.Subject(), m.Headers(), m.Data())
		}
	}
	for _, m := range messages(t, e.js, bus.DefaultStream, failedFilter) {
		f, err := events.FromMsg(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		d, err := events.DataAs[events.NotificationFailed](f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(d.Error, "http://"+down) {
			t.Errorf("notification.failed of %s does not name the receiver's host: %q", d.Receiver, d.Error)
		}
	}
	for where, text := range map[string]string{"the log": logs.String(), "the streams": stored.String()} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret %q:\n%s", where, s, text)
			}
		}
	}
}
