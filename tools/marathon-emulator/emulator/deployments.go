package emulator

import (
	"sort"
	"time"
)

// cancelledReason is DeploymentCanceledException's message
// (DeploymentManagerActor.scala), the "reason" of the deployment_failed
// event of a deployment that a forced change or a rollback cancelled.
const cancelledReason = "The upgrade has been cancelled"

type changeKind int

const (
	kindNone changeKind = iota
	kindCreate
	kindDelete
	kindScale
	kindUpgrade
	kindRestart
)

// appChange is one app's target in a root-group update; def nil deletes.
type appChange struct {
	id      string
	def     map[string]any
	restart bool
}

type action struct {
	kind  string // Marathon's DeploymentAction.actionName
	app   string
	state *appState // the stopped app, for StopApplication
}

// waitItem is an action that waits for new tasks to become healthy.
type waitItem struct {
	app        string
	tasks      []*task
	killOthers bool // a restart: the old tasks go once the new are healthy
	failed     bool // image never gets healthy
	done       bool
}

type deployment struct {
	id          string
	version     time.Time
	affected    []string
	affectedSet map[string]bool
	steps       [][]action
	cur         int
	original    map[string]map[string]any // affected app → definition before; nil: did not exist

	waiting []*waitItem
	timer   *time.Timer
	gen     int
}

type deploymentOutcome struct {
	success bool
	reason  string
}

func (d *deployment) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
}

// planLocked computes and applies a root-group update as
// GroupManagerImpl.updateRootEither does: it classifies each change,
// refuses (409) if a running deployment affects one of the changed apps
// and force is not set, else cancels those deployments, stores the new
// definitions and returns the deployment plan (DeploymentPlan.apply),
// not yet started. The caller publishes API events, then startLocked.
func (e *Emulator) planLocked(changes []appChange, force bool) (*deployment, *apiError) {
	type classified struct {
		c    appChange
		enc  encodedDef
		orig *appState
		kind changeKind
	}
	var cls []classified
	affected := map[string]bool{}
	for _, c := range changes {
		orig := e.apps[c.id]
		var enc encodedDef
		if c.def != nil {
			enc = encodeDef(c.def)
		}
		k := kindNone
		switch {
		case c.def == nil && orig == nil:
		case c.def == nil:
			k = kindDelete
		case orig == nil:
			k = kindCreate
		case c.restart:
			k = kindRestart
		case orig.key == enc.key:
		case orig.scaleKey == enc.scaleKey:
			k = kindScale
		default:
			k = kindUpgrade
		}
		if k != kindNone {
			affected[c.id] = true
		}
		cls = append(cls, classified{c, enc, orig, k})
	}

	// DeploymentPlan.isAffectedBy: conflicts are running deployments that
	// share an affected app; an update that changes nothing conflicts with
	// nothing.
	var conflicts []*deployment
	for _, d := range e.runOrder {
		for id := range affected {
			if d.affectedSet[id] {
				conflicts = append(conflicts, d)
				break
			}
		}
	}
	if len(conflicts) > 0 && !force {
		ids := make([]string, len(conflicts))
		for i, d := range conflicts {
			ids[i] = d.id
		}
		return nil, errAppLocked(ids)
	}
	for _, d := range conflicts {
		e.cancelLocked(d, cancelledReason)
	}

	version := e.stampLocked()
	d := &deployment{
		id:          newUUID(),
		version:     version,
		affectedSet: affected,
		original:    map[string]map[string]any{},
	}
	var stops, starts, main []action
	for _, x := range cls {
		if x.kind == kindNone {
			continue
		}
		id := x.c.id
		if x.orig != nil {
			d.original[id] = x.orig.def
		} else {
			d.original[id] = nil
		}
		switch x.kind {
		case kindDelete:
			delete(e.apps, id)
			e.touchGroupsLocked(id, version)
			stops = append(stops, action{kind: "StopApplication", app: id, state: x.orig})
		case kindCreate:
			st := &appState{id: id}
			st.setDef(x.c.def, x.enc, version, kindCreate)
			e.apps[id] = st
			e.touchGroupsLocked(id, version)
			starts = append(starts, action{kind: "StartApplication", app: id})
			main = append(main, action{kind: "ScaleApplication", app: id})
		case kindScale:
			x.orig.setDef(x.c.def, x.enc, version, kindScale)
			e.touchGroupsLocked(id, version)
			main = append(main, action{kind: "ScaleApplication", app: id})
		default:
			x.orig.setDef(x.c.def, x.enc, version, x.kind)
			e.touchGroupsLocked(id, version)
			main = append(main, action{kind: "RestartApplication", app: id})
		}
	}
	// Marathon orders the last step by dependencies; apps without
	// dependencies share one step, which is all the emulator models.
	for _, s := range [][]action{stops, starts, main} {
		if len(s) > 0 {
			sort.Slice(s, func(i, j int) bool { return s[i].app < s[j].app })
			d.steps = append(d.steps, s)
		}
	}
	d.affected = sortedKeys(affected)
	e.groups["/"].version = version
	return d, nil
}

// startLocked runs a planned deployment. A plan without steps succeeds at
// once and is never listed by GET /v2/deployments.
func (e *Emulator) startLocked(d *deployment) {
	if len(d.steps) == 0 {
		e.finishLocked(d, true, "")
		return
	}
	e.running[d.id] = d
	e.runOrder = append(e.runOrder, d)
	e.runStepLocked(d)
}

// runStepLocked starts d's current step, like DeploymentActor: publish
// deployment_info, perform the actions, wait for new tasks to be healthy.
func (e *Emulator) runStepLocked(d *deployment) {
	step := d.steps[d.cur]
	e.bus.publish("deployment_info", stepEvent{e.planJSON(d), stepJSON(step), "deployment_info", fmtTime(e.opts.Now())})
	d.waiting = nil
	for _, a := range step {
		switch a.kind {
		case "StopApplication":
			e.killLocked(a.state, a.state.tasks)
			e.bus.publish("app_terminated_event", appTerminatedEvent{a.app, "app_terminated_event", fmtTime(e.opts.Now())})
		case "StartApplication":
			// Kept for compatibility; it starts nothing (StartApplication
			// in DeploymentPlan.scala always scales to 0).
		case "ScaleApplication":
			st := e.apps[a.app]
			if st == nil {
				continue
			}
			n := instancesOf(st.def)
			switch cur := len(st.tasks); {
			case cur > n:
				e.killLocked(st, e.killSelection(st, cur-n))
			case cur < n:
				d.waiting = append(d.waiting, &waitItem{app: a.app, tasks: e.launchLocked(st, n-cur)})
			}
		case "RestartApplication":
			st := e.apps[a.app]
			if st == nil {
				continue
			}
			n := instancesOf(st.def)
			// TaskReplaceActor: keep minimumHealthCapacity of the instances
			// up while the new ones start; the rest of the old go now.
			keep := ceilFraction(minimumHealthCapacity(st.def), n)
			if old := len(st.tasks); old > keep {
				e.killLocked(st, e.killSelection(st, old-keep))
			}
			if n == 0 {
				e.killLocked(st, st.tasks)
				continue
			}
			d.waiting = append(d.waiting, &waitItem{app: a.app, tasks: e.launchLocked(st, n), killOthers: true})
		}
	}
	if len(d.waiting) == 0 {
		e.stepDoneLocked(d)
		return
	}
	d.stopTimer()
	gen := d.gen
	d.timer = time.AfterFunc(e.opts.DeployDuration, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if d.gen != gen || e.running[d.id] != d {
			return
		}
		d.timer = nil
		e.fireLocked(d)
	})
}

// fireLocked is the moment the waiting tasks of d's current step get
// their first health result.
func (e *Emulator) fireLocked(d *deployment) {
	allDone := true
	for _, w := range d.waiting {
		if w.done {
			continue
		}
		st := e.apps[w.app]
		if st == nil {
			w.done = true
			continue
		}
		if e.unhealthy(st.def) {
			allDone = false
			if !w.failed {
				w.failed = true
				e.failLocked(st, w.tasks)
			}
			continue
		}
		live := e.liveTasks(st, w.tasks)
		for _, t := range live {
			if t.hasHC && t.health != 1 {
				t.health = 1
				e.publishHealth(t, true)
			}
		}
		if w.killOthers {
			keep := map[*task]bool{}
			for _, t := range live {
				keep[t] = true
			}
			var others []*task
			for _, t := range st.tasks {
				if !keep[t] {
					others = append(others, t)
				}
			}
			e.killLocked(st, others)
		}
		w.done = true
	}
	if allDone {
		e.stepDoneLocked(d)
	}
}

func (e *Emulator) unhealthy(def map[string]any) bool {
	if e.opts.UnhealthyImages == nil {
		return false
	}
	img := imageOf(def)
	return img != "" && e.opts.UnhealthyImages.MatchString(img)
}

// liveTasks keeps the tasks of ts that st still runs.
func (e *Emulator) liveTasks(st *appState, ts []*task) []*task {
	in := map[*task]bool{}
	for _, t := range st.tasks {
		in[t] = true
	}
	var out []*task
	for _, t := range ts {
		if in[t] {
			out = append(out, t)
		}
	}
	return out
}

func (e *Emulator) stepDoneLocked(d *deployment) {
	e.bus.publish("deployment_step_success", stepEvent{e.planJSON(d), stepJSON(d.steps[d.cur]), "deployment_step_success", fmtTime(e.opts.Now())})
	d.cur++
	if d.cur >= len(d.steps) {
		e.finishLocked(d, true, "")
		return
	}
	e.runStepLocked(d)
}

// cancelLocked stops d where it is; tasks it started keep running, as
// Marathon leaves them to the next deployment.
func (e *Emulator) cancelLocked(d *deployment, reason string) {
	d.stopTimer()
	e.finishLocked(d, false, reason)
}

// finishLocked ends d (MarathonSchedulerActor.deploymentSuccess /
// deploymentFailed) and wakes WaitDeployment callers.
func (e *Emulator) finishLocked(d *deployment, success bool, reason string) {
	if _, ok := e.running[d.id]; ok {
		delete(e.running, d.id)
		for i, x := range e.runOrder {
			if x == d {
				e.runOrder = append(e.runOrder[:i:i], e.runOrder[i+1:]...)
				break
			}
		}
	}
	e.finished[d.id] = &deploymentOutcome{success: success, reason: reason}
	now := fmtTime(e.opts.Now())
	if success {
		e.bus.publish("deployment_success", deploymentSuccessEvent{d.id, e.planJSON(d), "deployment_success", now})
	} else {
		e.bus.publish("deployment_failed", deploymentFailedEvent{d.id, e.planJSON(d), "deployment_failed", now, reason})
	}
	for _, w := range e.waiters[d.id] {
		close(w)
	}
	delete(e.waiters, d.id)
}

// revertChangesLocked is DeploymentPlanReverter for apps: every app the
// deployment changed gets its definition from before it back; apps it
// created go away, apps it deleted come back.
func (e *Emulator) revertChangesLocked(d *deployment) []appChange {
	var out []appChange
	for _, id := range sortedKeys(d.original) {
		orig := d.original[id]
		if orig == nil {
			if e.apps[id] != nil {
				out = append(out, appChange{id: id})
			}
			continue
		}
		out = append(out, appChange{id: id, def: orig})
	}
	return out
}

// launchLocked starts n tasks of st's current version. They are running
// at once; health comes when the step timer fires.
func (e *Emulator) launchLocked(st *appState, n int) []*task {
	now := e.opts.Now()
	hasHC := hasHealthChecks(st.def)
	nports := portCount(st.def)
	out := make([]*task, 0, n)
	for i := 0; i < n; i++ {
		e.taskSeq++
		inst := taskPrefix(st.id) + ".instance-" + newUUID()
		t := &task{
			id: inst + "._app.1", instanceID: inst, appID: st.id, version: fmtTime(st.version),
			agent: e.taskSeq%3 + 1, stagedAt: now, startedAt: now, state: "TASK_RUNNING", hasHC: hasHC,
		}
		for p := 0; p < nports; p++ {
			t.ports = append(t.ports, 31000+(e.taskSeq*nports+p)%1000)
		}
		if t.ports == nil {
			t.ports = []int{}
		}
		st.tasks = append(st.tasks, t)
		out = append(out, t)
		e.publishStatus(t, "TASK_RUNNING", "Running")
	}
	return out
}

// seedTasksLocked gives a loaded app its instances, running and healthy,
// without events.
func (e *Emulator) seedTasksLocked(st *appState) {
	now := e.opts.Now()
	hasHC := hasHealthChecks(st.def)
	nports := portCount(st.def)
	for i := 0; i < instancesOf(st.def); i++ {
		e.taskSeq++
		inst := taskPrefix(st.id) + ".instance-" + newUUID()
		t := &task{
			id: inst + "._app.1", instanceID: inst, appID: st.id, version: fmtTime(st.version),
			agent: e.taskSeq%3 + 1, stagedAt: now, startedAt: now, state: "TASK_RUNNING", hasHC: hasHC,
			ports: []int{},
		}
		if hasHC {
			t.health = 1
		}
		for p := 0; p < nports; p++ {
			t.ports = append(t.ports, 31000+(e.taskSeq*nports+p)%1000)
		}
		st.tasks = append(st.tasks, t)
	}
}

// killSelection picks n tasks to kill: youngest first unless the app
// says OLDEST_FIRST.
func (e *Emulator) killSelection(st *appState, n int) []*task {
	ts := append([]*task(nil), st.tasks...)
	if st.def["killSelection"] != "OLDEST_FIRST" {
		for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
			ts[i], ts[j] = ts[j], ts[i]
		}
	}
	if n > len(ts) {
		n = len(ts)
	}
	return ts[:n]
}

func (e *Emulator) killLocked(st *appState, ts []*task) {
	if len(ts) == 0 {
		return
	}
	kill := map[*task]bool{}
	for _, t := range ts {
		kill[t] = true
	}
	kept := st.tasks[:0:0]
	for _, t := range st.tasks {
		if kill[t] {
			e.publishStatus(t, "TASK_KILLED", "Killed")
		} else {
			kept = append(kept, t)
		}
	}
	st.tasks = kept
}

// failLocked makes tasks of an image that never gets healthy show it:
// failing health checks where the app has them, otherwise tasks that
// fail and are relaunched (staged again) for ever.
func (e *Emulator) failLocked(st *appState, ts []*task) {
	for _, t := range e.liveTasks(st, ts) {
		if t.hasHC {
			t.health = -1
			e.publishHealth(t, false)
			continue
		}
		e.publishStatus(t, "TASK_FAILED", "Failed")
		t.state = "TASK_STAGING"
	}
}
