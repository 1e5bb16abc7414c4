package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// maxVersions is how many versions of an app are kept (zk_max_versions
// default, v2/examples/info.json).
const maxVersions = 50

type appState struct {
	id       string
	def      map[string]any // normalised definition, never mutated in place
	key      string         // encodeDef(def).key
	scaleKey string         // encodeDef(def).scaleKey
	body     []byte         // encodeDef(def).body

	version, lastScalingAt, lastConfigChangeAt time.Time

	versions []appVersion // oldest first
	tasks    []*task
	rendered []byte // renderDef of the current version
}

type appVersion struct {
	at       time.Time
	def      map[string]any
	rendered []byte
}

type groupState struct {
	id           string
	version      time.Time
	dependencies []any
	enforceRole  bool
}

// task is a simulated Mesos task of one app instance.
type task struct {
	id, instanceID string
	appID          string
	version        string
	agent          int
	ports          []int
	stagedAt       time.Time
	startedAt      time.Time
	state          string // TASK_STAGING or TASK_RUNNING
	hasHC          bool
	health         int // 0 unknown, 1 alive, -1 failing
}

func (t *task) host() string    { return fmt.Sprintf("agent-%d.emulator.local", t.agent) }
func (t *task) slaveID() string { return fmt.Sprintf("emulator-agent-S%d", t.agent) }
func (t *task) ip() string      { return fmt.Sprintf("10.0.0.%d", t.agent) }

// setDef installs def as the app's current definition at version, with
// the versionInfo rules of GroupVersioningUtil.updateVersionInfoForChangedApps.
func (a *appState) setDef(def map[string]any, enc encodedDef, version time.Time, kind changeKind) {
	a.def = def
	a.key = enc.key
	a.scaleKey = enc.scaleKey
	a.body = enc.body
	a.version = version
	switch kind {
	case kindScale:
		a.lastScalingAt = version
	default:
		a.lastScalingAt = version
		a.lastConfigChangeAt = version
	}
	a.rendered = renderDef(enc, a.version, a.lastScalingAt, a.lastConfigChangeAt)
	a.versions = append(a.versions, appVersion{at: version, def: def, rendered: a.rendered})
	if len(a.versions) > maxVersions {
		a.versions = append([]appVersion(nil), a.versions[len(a.versions)-maxVersions:]...)
	}
}

func (a *appState) versionAt(t time.Time) (appVersion, bool) {
	for _, v := range a.versions {
		if v.at.Equal(t) {
			return v, true
		}
	}
	return appVersion{}, false
}

type taskCounts struct{ staged, running, healthy, unhealthy int }

// counts follow TaskCounts.scala: healthy and unhealthy only count tasks
// with health information, i.e. of apps with health checks.
func (a *appState) counts() taskCounts {
	var c taskCounts
	for _, t := range a.tasks {
		switch t.state {
		case "TASK_STAGING":
			c.staged++
		case "TASK_RUNNING":
			c.running++
		}
		if t.hasHC && t.health == 1 && t.state == "TASK_RUNNING" {
			c.healthy++
		}
		if t.hasHC && t.health == -1 {
			c.unhealthy++
		}
	}
	return c
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// taskPrefix is how Marathon turns an app id into the prefix of instance
// ids: "/dev/app1" → "dev_app1".
func taskPrefix(appID string) string {
	return strings.ReplaceAll(strings.TrimPrefix(appID, "/"), "/", "_")
}

// appInfoJSON renders raml.AppInfo: the definition plus the task counts
// and running deployments that GET /v2/apps always embeds, and the tasks
// that GET /v2/apps/{id} embeds by default (AppsResource.show).
func (e *Emulator) appInfoJSON(a *appState, withTasks bool) []byte {
	var deps []string
	for _, d := range e.runOrder {
		if d.affectedSet[a.id] {
			deps = append(deps, d.id)
		}
	}
	return e.appInfoWith(a, withTasks, deps)
}

// tasksJSON renders raml.Task for each task of a.
func (e *Emulator) tasksJSON(a *appState) []map[string]any {
	out := make([]map[string]any, 0, len(a.tasks))
	for _, t := range a.tasks {
		m := map[string]any{
			"appId":        a.id,
			"host":         t.host(),
			"id":           t.id,
			"ipAddresses":  []map[string]string{{"ipAddress": t.ip(), "protocol": "IPv4"}},
			"ports":        t.ports,
			"servicePorts": []int{},
			"slaveId":      t.slaveID(),
			"state":        t.state,
			"stagedAt":     fmtTime(t.stagedAt),
			"version":      t.version,
			"localVolumes": []any{},
		}
		if t.state == "TASK_RUNNING" {
			m["startedAt"] = fmtTime(t.startedAt)
		}
		if t.hasHC && t.health != 0 {
			m["healthCheckResults"] = []map[string]any{{
				"alive":               t.health == 1,
				"consecutiveFailures": map[bool]int{true: 0, false: 1}[t.health == 1],
				"instanceId":          t.instanceID,
			}}
		} else {
			m["healthCheckResults"] = []any{}
		}
		out = append(out, m)
	}
	return out
}

// touchGroupsLocked creates the groups above id that do not exist yet,
// as RootGroup.updateApp does, and stamps every group above it.
func (e *Emulator) touchGroupsLocked(id string, version time.Time) {
	for _, g := range ancestors(id) {
		gs := e.groups[g]
		if gs == nil {
			gs = &groupState{id: g}
			e.groups[g] = gs
		}
		gs.version = version
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
