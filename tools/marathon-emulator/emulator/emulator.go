// Package emulator is an in-process emulator of the Marathon 1.10/1.11 REST
// API (apps, groups, deployments, the SSE event stream) with HTTP Basic and
// DC/OS service-account authentication, for tests, demos and benchmarks of
// clients that cannot reach a real Marathon (it needs a JVM and Mesos).
//
// Behaviour follows Marathon's own sources (mesosphere/marathon v1.10.26:
// AppsResource, GroupsResource, DeploymentsResource, DeploymentPlan,
// MarathonExceptionMapper, Events, HttpEventStreamServlet) and its RAML
// under docs/docs/rest-api/public/api/. Where Marathon runs tasks on Mesos,
// the emulator simulates them: new tasks become healthy after
// Options.DeployDuration, unless their image matches Options.UnhealthyImages.
package emulator

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// MarathonVersion is what GET /v2/info reports.
const MarathonVersion = "1.11.0"

// Options configure an Emulator. The zero value is a usable open Marathon.
type Options struct {
	// DeployDuration is the time new tasks need to become healthy, i.e. the
	// length of a deployment step that starts tasks (default 2s).
	DeployDuration time.Duration
	// UnhealthyImages matches docker images whose tasks never become
	// healthy: deployments to them run until cancelled, as on Marathon.
	UnhealthyImages *regexp.Regexp
	// BasicAuth requires HTTP Basic with this user and password.
	BasicAuth *[2]string
	// DCOSPublicKey enables DC/OS authentication: POST
	// /acs/api/v1/auth/login verifies service-login JWTs signed with the
	// matching private key, every other call needs "Authorization:
	// token=<issued token>".
	DCOSPublicKey *rsa.PublicKey
	// DCOSUID is the only uid allowed to log in (any uid if empty).
	DCOSUID string
	// TokenTTL is the lifetime of issued DC/OS tokens (default 5 days, as
	// DC/OS).
	TokenTTL time.Duration
	// Heartbeat is the SSE heartbeat interval (default 10s, Jetty's
	// EventSourceServlet default).
	Heartbeat time.Duration
	// Leader is what /v2/leader and /v2/info report (default
	// "marathon.mesos:8080"; main sets it to the listen address).
	Leader string
	// Now replaces the clock used for versions, event timestamps and token
	// expiry, so tests can expire tokens without sleeping. Deployment
	// timing always uses real timers.
	Now func() time.Time
}

// Emulator is an emulated Marathon. All methods are safe for concurrent use.
type Emulator struct {
	opts   Options
	faults *Faults
	bus    *bus
	log    requestLog
	auth   *dcosAuth

	mu        sync.Mutex
	apps      map[string]*appState
	groups    map[string]*groupState
	running   map[string]*deployment // by id
	runOrder  []*deployment          // start order, for GET /v2/deployments
	finished  map[string]*deploymentOutcome
	waiters   map[string][]chan struct{}
	seeds     [][]byte
	lastStamp time.Time
	taskSeq   int
}

// New returns an Emulator with opts' defaults filled in.
func New(opts Options) *Emulator {
	if opts.DeployDuration <= 0 {
		opts.DeployDuration = 2 * time.Second
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 5 * 24 * time.Hour
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 10 * time.Second
	}
	if opts.Leader == "" {
		opts.Leader = "marathon.mesos:8080"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Emulator{opts: opts, bus: newBus()}
	e.faults = &Faults{bus: e.bus}
	if opts.DCOSPublicKey != nil {
		e.auth = newDCOSAuth(opts.DCOSPublicKey, opts.DCOSUID, opts.TokenTTL, opts.Now)
	}
	e.resetLocked()
	return e
}

// Options returns the effective options (defaults filled in).
func (e *Emulator) Options() Options { return e.opts }

// Faults gives access to fault injection.
func (e *Emulator) Faults() *Faults { return e.faults }

// Close stops deployment timers and closes every event stream; streams
// opened later end at once. The rest of the API keeps answering.
func (e *Emulator) Close() {
	e.mu.Lock()
	for _, d := range e.running {
		d.stopTimer()
	}
	e.mu.Unlock()
	e.bus.closeAll(true)
}

// resetLocked empties the state; callers hold e.mu or own e exclusively.
func (e *Emulator) resetLocked() {
	for _, d := range e.running {
		d.stopTimer()
	}
	e.apps = map[string]*appState{}
	e.groups = map[string]*groupState{"/": {id: "/", version: e.stampLocked()}}
	e.running = map[string]*deployment{}
	e.runOrder = nil
	e.finished = map[string]*deploymentOutcome{}
	for _, ws := range e.waiters {
		for _, w := range ws {
			close(w)
		}
	}
	e.waiters = map[string][]chan struct{}{}
}

// Reset returns the emulator to the state right after the Load calls it
// has seen: running deployments are dropped without events, the request
// log and faults are cleared, open event streams stay open.
func (e *Emulator) Reset() error {
	e.mu.Lock()
	e.resetLocked()
	seeds := e.seeds
	e.mu.Unlock()
	e.log.clear()
	e.faults.Clear()
	for _, s := range seeds {
		if err := e.load(s); err != nil {
			return err
		}
	}
	return nil
}

// Load seeds apps from JSON: an array of app definitions, {"apps":[…]} or
// a group ({"id":"/","apps":[…],"groups":[…]}). Seeded apps run their
// instances, healthy, with no deployment and no events. Definitions are
// validated as POST /v2/apps would; an app that exists is replaced.
func (e *Emulator) Load(apps []byte) error {
	if err := e.load(apps); err != nil {
		return err
	}
	e.mu.Lock()
	e.seeds = append(e.seeds, append([]byte(nil), apps...))
	e.mu.Unlock()
	return nil
}

// App returns the app as GET /v2/apps/{id} shows it (the "app" object).
func (e *Emulator) App(id string) (json.RawMessage, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[absPath(id)]
	if a == nil {
		return nil, false
	}
	return e.appInfoJSON(a, true), true
}

// Requests returns every mutating API request (POST, PUT, PATCH, DELETE)
// seen so far, oldest first, including ones answered by injected faults.
// Admin requests under /_emulator/ are not recorded.
func (e *Emulator) Requests() []Request { return e.log.all() }

// ClearRequests empties the request log.
func (e *Emulator) ClearRequests() { e.log.clear() }

// Event is one event as the SSE stream carries it.
type Event struct {
	Type string          `json:"eventType"`
	Data json.RawMessage `json:"data"`
}

// Subscribe delivers every event (or those of the given types) published
// from now on, in publication order; call cancel to stop. Slow
// subscribers are dropped like slow SSE clients (the channel is closed).
func (e *Emulator) Subscribe(types ...string) (events <-chan Event, cancel func()) {
	s := e.bus.subscribe(types, 4096)
	return s.ch, func() { e.bus.unsubscribe(s) }
}

// DeploymentResult is how a deployment ended.
type DeploymentResult struct {
	ID      string `json:"id"`
	Success bool   `json:"success"`
	Reason  string `json:"reason,omitempty"`
}

// WaitDeployment blocks until the deployment has ended (it may have ended
// already) or ctx is done. It is the test-side alternative to watching the
// event stream: no sleeping, no polling.
func (e *Emulator) WaitDeployment(ctx context.Context, id string) (DeploymentResult, error) {
	for {
		e.mu.Lock()
		if o, ok := e.finished[id]; ok {
			e.mu.Unlock()
			return DeploymentResult{ID: id, Success: o.success, Reason: o.reason}, nil
		}
		if _, ok := e.running[id]; !ok {
			e.mu.Unlock()
			return DeploymentResult{}, errors.New("emulator: unknown deployment " + id)
		}
		w := make(chan struct{})
		e.waiters[id] = append(e.waiters[id], w)
		e.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return DeploymentResult{}, ctx.Err()
		}
	}
}

// Settle makes every task that is waiting to become healthy decide now,
// instead of after DeployDuration; deployments whose images are healthy
// finish (or move on to their next step) at once.
func (e *Emulator) Settle() {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A step that completes may start another that waits again: loop until
	// nothing is pending (unhealthy deployments stay, but are not pending).
	for {
		progressed := false
		for _, d := range append([]*deployment(nil), e.runOrder...) {
			if d.timer != nil {
				// stopTimer bumps gen, so a timer already firing does nothing.
				d.stopTimer()
				e.fireLocked(d)
				progressed = true
			}
		}
		if !progressed {
			return
		}
	}
}

// RunningDeployments returns the ids of the deployments GET /v2/deployments
// lists, in start order.
func (e *Emulator) RunningDeployments() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, len(e.runOrder))
	for i, d := range e.runOrder {
		ids[i] = d.id
	}
	return ids
}

// Handler serves the Marathon API, the DC/OS login endpoint when enabled,
// the same API under /service/marathon/ (the DC/OS Admin Router path), and
// the emulator's admin endpoints under /_emulator/.
func (e *Emulator) Handler() http.Handler { return http.HandlerFunc(e.serveHTTP) }

// stampLocked returns a new version timestamp: millisecond precision like
// Marathon's Timestamp, strictly increasing so that two changes never
// share a version.
func (e *Emulator) stampLocked() time.Time {
	t := e.opts.Now().UTC().Truncate(time.Millisecond)
	if !t.After(e.lastStamp) {
		t = e.lastStamp.Add(time.Millisecond)
	}
	e.lastStamp = t
	return t
}

// fmtTime renders a time like Marathon's Timestamp.toString.
func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// parseTime accepts Marathon versions and other ISO-8601 forms.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05.000Z07:00", time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
