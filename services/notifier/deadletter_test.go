package notifier_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// deadLetterEnv has a team receiver that refuses deployment events for
// good (so the notifier dead-letters them) and an on-call receiver that gets
// event.deadlettered, answering as oncall says.
func deadLetterEnv(t *testing.T, oncall int) (e *env, team, call *hook, rec *recording) {
	t.Helper()
	team = newHook(t, func(http.ResponseWriter, int, events.Event) int { return http.StatusBadRequest })
	call = newHook(t, func(http.ResponseWriter, int, events.Event) int { return oncall })
	e = newEnv(t, `
  receivers:
    - { name: team, webhook: { url: "`+team.srv.URL+`", secret: `+hookSecret+` } }
    - { name: oncall, webhook: { url: "`+call.srv.URL+`", secret: `+hookSecret+` } }
  routes:
    - match: { types: ["deployment.*"] }
      receivers: [team]
    - match: { types: [event.deadlettered] }
      receivers: [oncall]
`)
	rec = &recording{}
	e.start(&notifier.Service{Integrations: map[string]notifier.Constructor{"webhook": rec.constructor}})
	return e, team, call, rec
}

// A dead letter reaches the on-call receiver once, saying who gave up on
// what and how to redrive it.
func TestDeadLetterNotifiedOnce(t *testing.T) {
	e, team, oncall, rec := deadLetterEnv(t, http.StatusOK)
	ev := e.publish(deploymentEvent(t, events.TypeDeploymentFailed, "prd", "vsphere-prd", "6.0.0"))[0]
	testkit.WaitFor(t, "the dead letter at on-call", func() bool { return len(oncall.delivered()) == 1 })
	e.drained()

	if n := len(team.all()); n != 1 {
		t.Errorf("team got %d requests, want 1 (a 400 is not retried)", n)
	}
	got := oncall.all()
	if len(got) != 1 {
		t.Fatalf("on-call got %d requests, want 1", len(got))
	}
	a := got[0].event
	consumer := notifier.ConsumerName("team")
	if a.Type() != string(events.TypeEventDeadLettered) ||
		a.ID() != events.CausedID(ev.ID(), events.TypeEventDeadLettered, consumer+":"+bus.DefaultStream+":1") ||
		events.CausationOf(a) != ev.ID() || events.EnvironmentOf(a) != "prd" {
		t.Errorf("on-call got %s %s (causation %s, environment %s)", a.Type(), a.ID(), events.CausationOf(a), events.EnvironmentOf(a))
	}
	d, err := events.DataAs[events.EventDeadLettered](a)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := bus.GetDeadLetter(t.Context(), e.js, bus.DeadLetterStreamName(bus.DefaultStream), d.DLQSequence)
	if err != nil || dead.EventID != ev.ID() || dead.Consumer != consumer {
		t.Errorf("dlqSequence %d: dead letter %+v, %v", d.DLQSequence, dead, err)
	}
	if d.Consumer != consumer || d.EventID != ev.ID() || !strings.Contains(d.Error, "400") {
		t.Errorf("data %+v", d)
	}

	var msg notify.Message
	for _, n := range rec.notifications() {
		if n.Event.ID() == a.ID() {
			msg = n.Message
		}
	}
	seq := "slipway dlq show " + strconv.FormatUint(d.DLQSequence, 10)
	if !strings.HasPrefix(msg.Title, "dead letter: "+consumer+" gave up on deployment.failed") || !strings.Contains(msg.Text, seq) ||
		!strings.Contains(msg.Text, "slipway dlq redrive "+strconv.FormatUint(d.DLQSequence, 10)) || !strings.Contains(msg.Text, ev.ID()) {
		t.Errorf("on-call message:\n%s", msg.Text)
	}
	if n := e.metric("slipway_dead_lettered_total", "consumer", consumer); n != 1 {
		t.Errorf("slipway_dead_lettered_total{consumer=%s} = %v, want 1", consumer, n)
	}
}

// The on-call receiver refusing the dead-letter notification too: that
// notification is dead-lettered, and neither announced as a dead letter nor
// as a failed notification, so nothing goes round in circles.
func TestFailedDeadLetterNotificationEndsTheChain(t *testing.T) {
	e, _, oncall, _ := deadLetterEnv(t, http.StatusBadRequest)
	e.publish(deploymentEvent(t, events.TypeDeploymentFailed, "prd", "vsphere-prd", "6.0.1"))
	testkit.WaitFor(t, "the dead letter refused at on-call", func() bool { return len(oncall.all()) == 1 })
	e.drained()

	dlq := messages(t, e.js, bus.DeadLetterStreamName(bus.DefaultStream), ">")
	if len(dlq) != 2 {
		t.Errorf("%d dead letters, want 2: the event (team) and its announcement (on-call)", len(dlq))
	}
	if n := len(messages(t, e.js, bus.DefaultStream, events.FilterSubject(events.TypeEventDeadLettered, ""))); n != 1 {
		t.Errorf("%d event.deadlettered events, want 1", n)
	}
	// The team's failure is announced; the on-call's is not.
	if n := len(messages(t, e.js, bus.DefaultStream, events.FilterSubject(events.TypeNotificationFailed, ""))); n != 1 {
		t.Errorf("%d notification.failed events, want 1", n)
	}
	if n := len(oncall.all()); n != 1 {
		t.Errorf("on-call got %d requests, want 1", n)
	}
}
