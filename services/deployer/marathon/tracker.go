package marathon

import (
	"github.com/slipway-cd/slipway/services/deployer/target"
	"sync"
	"time"
)

// outcome is how a Marathon deployment ended. Gone: the deployment
// disappeared from /v2/deployments without an event reaching us (the
// stream was down); the app tells the rest.
type outcome = target.Outcome

// tracker hands Marathon's deployment outcomes, from the event stream or
// from polling, to whoever follows that deployment.
type tracker struct {
	mu      sync.Mutex
	waiters map[string][]chan outcome
	// ended keeps outcomes that arrived before anyone waited for them: a
	// fast deployment may end before its PUT's answer is processed. Most
	// are never claimed (the event stream tells of every deployment on the
	// cluster, not only ours), so they are swept after endedTTL.
	ended     map[string]endedOutcome
	lastSweep time.Time
}

type endedOutcome struct {
	outcome
	at time.Time
}

// endedTTL bounds how long an unclaimed outcome is kept: long enough for
// any PUT's answer to be processed, short enough that a busy cluster's
// deployments by others do not pile up.
const endedTTL = 5 * time.Minute

func newTracker() *tracker {
	return &tracker{waiters: map[string][]chan outcome{}, ended: map[string]endedOutcome{}}
}

// wait returns a channel that receives the outcome of deployment id once.
func (t *tracker) wait(id string) <-chan outcome {
	ch := make(chan outcome, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if o, ok := t.ended[id]; ok {
		delete(t.ended, id)
		ch <- o.outcome
		return ch
	}
	t.waiters[id] = append(t.waiters[id], ch)
	return ch
}

// forget drops a waiter that gave up (timeout).
func (t *tracker) forget(id string, ch <-chan outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws := t.waiters[id]
	for i, w := range ws {
		if w == ch {
			t.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(t.waiters[id]) == 0 {
		delete(t.waiters, id)
	}
}

// finish delivers the outcome of deployment id. A "gone" outcome never
// overrides one from an event.
func (t *tracker) finish(id string, o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.ended[id]; ok && (o.Gone || !prev.Gone) {
		return
	}
	if ws := t.waiters[id]; len(ws) > 0 {
		for _, ch := range ws {
			ch <- o
		}
		delete(t.waiters, id)
		return
	}
	now := time.Now()
	t.ended[id] = endedOutcome{o, now}
	if now.Sub(t.lastSweep) < endedTTL/5 {
		return
	}
	t.lastSweep = now
	for k, e := range t.ended {
		if now.Sub(e.at) > endedTTL {
			delete(t.ended, k)
		}
	}
}

// following lists the deployments someone waits for.
func (t *tracker) following() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.waiters))
	for id := range t.waiters {
		ids = append(ids, id)
	}
	return ids
}
