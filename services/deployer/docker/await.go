package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Await waits until the rollout's container (rolloutID, a container id)
// is healthy under the workload's name: its health check passes, or,
// without one, it has run for the cluster's grace without exiting or
// restarting. It first finishes what an interrupted Update or RollBack
// left undone. A recreate that succeeds has its old container removed;
// only then is success reported.
func (t *Target) Await(ctx context.Context, workloadID, rolloutID string, deadline time.Time) (target.Outcome, bool, error) {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// Events wake the check at once; the ticker covers an event stream
	// that is down or filters differently.
	evctx, evcancel := context.WithCancel(wctx)
	defer evcancel()
	var msgs <-chan events.Message
	var errs <-chan error
	// The client encodes the filters with the API version it negotiates:
	// only once it has (see nodeName), or the read races.
	if _, err := t.nodeName(wctx); err == nil {
		msgs, errs = t.c.Events(evctx, events.ListOptions{Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("container", rolloutID),
		)})
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	a := awaiting{name: workloadID, id: rolloutID}
	for {
		o, done, err := t.check(wctx, &a)
		switch {
		case done:
			return o, false, nil
		case err != nil && ctx.Err() != nil:
			return target.Outcome{}, false, ctx.Err()
		case errors.As(err, new(abort)):
			return target.Outcome{}, false, err
		case err != nil && wctx.Err() == nil:
			// The engine may be back at the next tick; the deadline
			// bounds the wait either way.
			a.status = err.Error()
			t.log.Warn("awaiting a container", "workload", workloadID, "container", short(rolloutID), "error", err)
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return target.Outcome{}, false, ctx.Err()
			}
			return target.Outcome{Reason: fmt.Sprintf("container %s not healthy by the deadline: %s", workloadID, a.status)}, true, nil
		case <-msgs:
		case err := <-errs:
			if wctx.Err() == nil {
				t.log.Debug("container events ended; polling only", "workload", workloadID, "error", err)
			}
			msgs, errs = nil, nil
		case <-tick.C:
		}
	}
}

// awaiting is what Await has seen of the container so far.
type awaiting struct {
	name, id string
	status   string // the last state seen, for a timeout's reason

	// For a container without a health check: since when it has been
	// seen running, in which run (StartedAt) and after how many restarts.
	since    time.Time
	started  time.Time
	restarts int
	baseline bool
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// check reads the host once: it finishes an interrupted operation, judges
// the container, and on success completes the recreate.
func (t *Target) check(ctx context.Context, a *awaiting) (target.Outcome, bool, error) {
	s, err := t.read(ctx, a.name)
	if err != nil {
		return target.Outcome{}, false, err
	}
	var x *container.InspectResponse
	for _, c := range s.all() {
		if c.ID == a.id {
			x = c
		}
	}
	gone := func(why string) (target.Outcome, bool, error) {
		return target.Outcome{Gone: true, Reason: fmt.Sprintf("container %s (%s) %s", a.name, short(a.id), why)}, true, nil
	}
	switch {
	case x == nil:
		return gone("no longer exists")
	case x == s.failed:
		return gone("was rolled back")
	case x == s.next || (x == s.placed() && neverStarted(x)):
		// An Update stopped half way: carry it on.
		a.status = "being placed"
		return target.Outcome{}, false, t.place(ctx, s, s.old(), x)
	case s.failed != nil || (x == s.prev && s.newest() == nil):
		// A rollback stopped half way: carry it on.
		a.status = "being restored"
		_, err := t.rollBack(ctx, s)
		return target.Outcome{}, false, err
	case x != s.cur:
		return gone("is not under the name " + a.name + " any more")
	}
	o, done := t.judge(ctx, x, a, s.placed() == x)
	if !done || !o.Success {
		return o, done, nil
	}
	if x == s.placed() {
		if err := t.remove(ctx, s.prev.ID); err != nil {
			return target.Outcome{}, false, err
		}
		if err := t.step(a.name, stepRemoveOld); err != nil {
			return target.Outcome{}, false, err
		}
	}
	return o, true, nil
}

// judge tells whether the container under the name is healthy (done,
// Success), has failed (done, with the reason), or is still on its way.
func (t *Target) judge(ctx context.Context, x *container.InspectResponse, a *awaiting, fresh bool) (target.Outcome, bool) {
	st := x.State
	fail := func(format string, args ...any) (target.Outcome, bool) {
		return target.Outcome{Reason: fmt.Sprintf(format, args...)}, true
	}
	if st == nil {
		a.status = "no state reported"
		return target.Outcome{}, false
	}
	if st.Restarting {
		return fail("container %s (%s) keeps restarting: exit code %d after %d restarts%s",
			a.name, x.Config.Image, st.ExitCode, x.RestartCount, t.lastLog(ctx, x))
	}
	if !st.Running {
		why := fmt.Sprintf("exited (exit code %d)", st.ExitCode)
		if st.OOMKilled {
			why += " (killed: out of memory)"
		}
		if st.Error != "" {
			why += ": " + st.Error
		}
		return fail("container %s (%s) %s%s", a.name, x.Config.Image, why, t.lastLog(ctx, x))
	}
	if h := st.Health; h != nil && h.Status != container.NoHealthcheck {
		switch h.Status {
		case container.Healthy:
			return target.Outcome{Success: true}, true
		case container.Unhealthy:
			return fail("container %s (%s) is unhealthy after %d failed health checks%s",
				a.name, x.Config.Image, h.FailingStreak, lastCheck(h))
		}
		a.status = "health: " + string(h.Status) + lastCheck(h)
		return target.Outcome{}, false
	}
	// No health check: it must keep running, in the same run, for grace.
	if !a.baseline {
		a.baseline, a.restarts, a.started, a.since = true, x.RestartCount, startedAt(x), time.Now()
		if fresh {
			// A new container has never restarted.
			a.restarts = 0
		}
	}
	if x.RestartCount > a.restarts || !startedAt(x).Equal(a.started) {
		return fail("container %s (%s) restarted (%d restarts, last exit code %d)%s",
			a.name, x.Config.Image, x.RestartCount, st.ExitCode, t.lastLog(ctx, x))
	}
	if ran := time.Since(a.since); ran < t.grace {
		a.status = fmt.Sprintf("running for %s of the %s grace", ran.Round(time.Millisecond), t.grace)
		return target.Outcome{}, false
	}
	return target.Outcome{Success: true}, true
}

// lastCheck is the last health check's result, for a reason.
func lastCheck(h *container.Health) string {
	if len(h.Log) == 0 {
		return ""
	}
	r := h.Log[len(h.Log)-1]
	out := lastLine(r.Output)
	if out == "" {
		return fmt.Sprintf("; last check: exit code %d", r.ExitCode)
	}
	return fmt.Sprintf("; last check: exit code %d: %s", r.ExitCode, out)
}

// lastLog is the container's last log line, for a reason ("" when it has
// none or the logs cannot be read).
func (t *Target) lastLog(ctx context.Context, x *container.InspectResponse) string {
	rc, err := t.c.ContainerLogs(ctx, x.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	lim := io.LimitReader(rc, 64<<10)
	if x.Config.Tty {
		_, err = io.Copy(&buf, lim)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, lim)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	if l := lastLine(buf.String()); l != "" {
		return "; last log line: " + l
	}
	return ""
}

// lastLine is the last non-empty line of s, shortened to what a reason
// can carry.
func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	const max = 200
	if len(last) > max {
		last = last[:max] + "…"
	}
	return last
}
