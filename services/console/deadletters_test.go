package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/console/auth"
)

// deadLetterRig is a console whose "flaky" consumer dead-letters every
// image.pushed event at its first failure, with a user who operates in
// dev only ("devops") beside the rig's others.
func deadLetterRig(t *testing.T) *consoleRig {
	cfg := testConfig()
	cfg.Roles = append(cfg.Roles, config.Role{Group: "dev-ops", Environments: []string{"dev"}, Can: []string{"operate"}})
	r := newConsoleRig(t, cfg)
	r.users["devops"] = auth.User{Identity: access.Identity{Name: "dora", Groups: []string{"dev-ops"}, Via: events.ViaConsole}}
	c, err := bus.Consume(t.Context(), r.js, bus.ConsumerConfig{Durable: "flaky", MaxDeliver: 1, Logger: slog.New(slog.DiscardHandler),
		FilterSubjects: []string{events.FilterSubject(events.TypeImagePushed, "")}},
		func(context.Context, events.Event) error { return errors.New("registry said 500") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return r
}

// deadLetter pushes an image in env and waits for its dead letter.
func (r *consoleRig) deadLetter(t *testing.T, env string) (events.Event, bus.DeadLetter) {
	t.Helper()
	ev := r.push(t, env, "apps/flaky", "1", digestOf(len(env)))
	var dl bus.DeadLetter
	eventually(t, "the dead letter of "+ev.ID(), func() bool {
		list, err := bus.ListDeadLetters(t.Context(), r.js, bus.DeadLetterStreamName(bus.DefaultStream))
		for _, d := range list {
			if err == nil && d.EventID == ev.ID() {
				dl = d
				return true
			}
		}
		return false
	})
	return ev, dl
}

// flash is what a redirect back to the list says.
func flash(t *testing.T, res *http.Response) string {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s, want a redirect to the list", res.Status)
	}
	u, err := url.Parse(res.Header.Get("Location"))
	if err != nil || u.Path != "/deadletters" {
		t.Fatalf("redirected to %s", res.Header.Get("Location"))
	}
	return strings.Join(u.Query()["flash"], "; ")
}

func TestADeadLetterIsListedShownAndRedrivenBackOnItsSubjectInTheOperatorsName(t *testing.T) {
	r := deadLetterRig(t)
	ev, dl := r.deadLetter(t, "prd")
	seq := strconv.FormatUint(dl.Seq, 10)

	code, list := r.body(t, "ops", "/deadletters")
	for _, want := range []string{"/deadletters/" + seq, "flaky", "slipway.image.pushed.prd", "image.pushed", "registry said 500"} {
		if code != http.StatusOK || !strings.Contains(list, want) {
			t.Fatalf("the list (%d) lacks %q:\n%s", code, want, list)
		}
	}
	code, page := r.body(t, "ops", "/deadletters/"+seq)
	for _, want := range []string{"Slipway-Dlq-Consumer", "registry said 500", `&#34;id&#34;: &#34;` + ev.ID() + `&#34;`, "\n  &#34;data&#34;: {", "apps/flaky"} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("the dead letter's page (%d) lacks %q:\n%s", code, want, page)
		}
	}

	actionsSeen := testkit.Record(t, r.js, events.FilterSubject(events.TypeActionRequested, ""))
	pushes := testkit.Record(t, r.js, events.FilterSubject(events.TypeImagePushed, "prd"))
	// Inside the stream's duplicate window the event would be dropped as
	// a copy: the dead letter stays, and the answer says when to retry.
	msg := flash(t, r.post(t, "ops", "/deadletters/"+seq+"/redrive", url.Values{"reason": {"registry is back"}}))
	if !strings.HasPrefix(msg, seq+": kept:") || !strings.Contains(msg, "redrive again after") {
		t.Fatalf("a redrive inside the duplicate window says %q", msg)
	}
	shortenDuplicateWindow(t, r)
	eventually(t, "a redrive past the duplicate window", func() bool {
		msg = flash(t, r.post(t, "ops", "/deadletters/redrive", url.Values{"seq[]": {seq}, "reason": {"registry is back"}}))
		return !strings.Contains(msg, "kept")
	})
	if want := seq + ": redriven: event " + ev.ID() + " back on slipway.image.pushed.prd"; msg != want {
		t.Fatalf("the redrive says %q, want %q", msg, want)
	}
	announced := actionsSeen.All()
	for _, a := range announced {
		d, err := events.DataAs[events.ActionRequested](a)
		if err != nil || d.Action != events.ActionRedrive || d.Actor != "otto" || d.Via != events.ViaConsole || d.Reason != "registry is back" ||
			d.Target.Sequence != dl.Seq || d.Target.EventID != ev.ID() || d.Target.Environment != "prd" {
			t.Errorf("announced %+v (%v), want otto's redrive of %s via console", d, err, seq)
		}
	}
	if len(announced) < 2 {
		t.Errorf("%d redrives announced, want one per request (two at least)", len(announced))
	}
	eventually(t, "the event back on its subject (twice there: the push and the redrive)", func() bool {
		n := 0
		for _, e := range pushes.All() {
			if e.ID() == ev.ID() {
				n++
			}
		}
		return n == 2
	})
	if _, list := r.body(t, "ops", "/deadletters"); strings.Contains(list, "/deadletters/"+seq+`"`) {
		t.Errorf("the redriven dead letter is still listed:\n%s", list)
	}
}

func TestRedrivingAPrdDeadLetterNeedsOperateInPrd(t *testing.T) {
	r := deadLetterRig(t)
	_, prd := r.deadLetter(t, "prd")
	_, dev := r.deadLetter(t, "dev")
	prdSeq, devSeq := strconv.FormatUint(prd.Seq, 10), strconv.FormatUint(dev.Seq, 10)
	actionsSeen := testkit.Record(t, r.js, events.FilterSubject(events.TypeActionRequested, ""))

	// Viewers and approvers operate nowhere: no dead letters for them.
	for _, user := range []string{"dev", "release"} {
		if code, page := r.body(t, user, "/deadletters"); code != http.StatusForbidden || !strings.Contains(page, "for operators") {
			t.Errorf("%s's /deadletters: %d, want the 403 page", user, code)
		}
	}
	// A dev operator sees dev's only, and may not touch prd's.
	if _, list := r.body(t, "devops", "/deadletters"); !strings.Contains(list, "/deadletters/"+devSeq+`"`) || strings.Contains(list, "slipway.image.pushed.prd") {
		t.Errorf("a dev operator's list shows prd's dead letter or not dev's:\n%s", list)
	}
	if code, _ := r.body(t, "devops", "/deadletters/"+prdSeq); code != http.StatusForbidden {
		t.Errorf("a dev operator opening prd's dead letter: %d, want 403", code)
	}
	for _, path := range []string{"/deadletters/" + prdSeq + "/redrive", "/deadletters/redrive", "/actions/redrive"} {
		res := r.post(t, "devops", path, url.Values{"seq[]": {prdSeq}, "seq": {prdSeq}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("a dev operator's POST %s of prd's dead letter: %s, want 403", path, res.Status)
		}
	}
	// Without the CSRF token nothing happens either, even for an operator.
	if res := r.post(t, "ops", "/deadletters/"+prdSeq+"/redrive", url.Values{"csrf": {"forged"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("a redrive with a forged CSRF token: %s, want 403", res.Status)
	}
	// In a bulk redrive each is judged on its own.
	msg := flash(t, r.post(t, "devops", "/deadletters/redrive", url.Values{"seq[]": {prdSeq, devSeq}}))
	if !strings.Contains(msg, prdSeq+": forbidden: you may not operate in prd") || !strings.Contains(msg, devSeq+": kept") {
		t.Errorf("a dev operator's bulk redrive of prd's and dev's says %q", msg)
	}

	got := actionsSeen.Wait(t, events.TypeActionRequested, 1)
	if d, _ := events.DataAs[events.ActionRequested](got[0]); len(got) != 1 || d.Target.Sequence != dev.Seq || d.Actor != "dora" {
		t.Errorf("announced %d actions, the first %+v; want dora's redrive of dev's only", len(got), d)
	}
	if list, _ := bus.ListDeadLetters(t.Context(), r.js, bus.DeadLetterStreamName(bus.DefaultStream)); len(list) != 2 {
		t.Errorf("%d dead letters after the refusals, want both kept", len(list))
	}
}

// shortenDuplicateWindow makes the event stream forget event ids after
// 100 ms (a configuration may not go under 10 minutes; a test may), so
// that a redrive can take effect.
func shortenDuplicateWindow(t *testing.T, r *consoleRig) {
	t.Helper()
	st, err := r.js.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := r.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}
