package emulator

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// deploymentResult answers a change like RestResource.deploymentResult:
// {"version","deploymentId"} and the Marathon-Deployment-Id header.
func deploymentResult(c *call, status int, d *deployment) {
	c.w.Header().Set("Marathon-Deployment-Id", d.id)
	writeJSON(c.w, status, map[string]string{"version": fmtTime(d.version), "deploymentId": d.id})
}

// location renders a Location header: JAX-RS resolves Marathon's relative
// URIs (the app or group id) against the application's base URI.
func location(c *call, id string) string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host + c.prefix + id
}

// depsByAppLocked maps app ids to the running deployments affecting them,
// once per request, so listing stays O(apps + deployment size).
func (e *Emulator) depsByAppLocked() map[string][]string {
	m := map[string][]string{}
	for _, d := range e.runOrder {
		for _, id := range d.affected {
			m[id] = append(m[id], d.id)
		}
	}
	return m
}

// listApps is GET /v2/apps (AppsResource.index): filters cmd and id are
// case-insensitive "contains", label is a label selector; counts and
// deployments are always embedded, tasks with embed=apps.tasks.
func (e *Emulator) listApps(c *call) {
	q := c.r.URL.Query()
	var sel labelSelector
	if l := q.Get("label"); l != "" {
		var err error
		if sel, err = parseLabelSelector(l); err != nil {
			writeAPIError(c.w, errMessage(http.StatusUnprocessableEntity, err.Error()))
			return
		}
	}
	idFilter := strings.ToLower(q.Get("id"))
	cmdFilter := strings.ToLower(q.Get("cmd"))
	withTasks := false
	for _, em := range q["embed"] {
		if em == "apps.tasks" || em == "apps.failures" {
			withTasks = true
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.apps))
	for id, a := range e.apps {
		if idFilter != "" && !strings.Contains(strings.ToLower(id), idFilter) {
			continue
		}
		if cmdFilter != "" {
			cmd, _ := a.def["cmd"].(string)
			if !strings.Contains(strings.ToLower(cmd), cmdFilter) {
				continue
			}
		}
		if sel != nil {
			labels, _ := a.def["labels"].(map[string]any)
			if !sel.matches(labels) {
				continue
			}
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	deps := e.depsByAppLocked()
	var buf bytes.Buffer
	buf.Grow(len(ids) * 1400) // a typical AppInfo
	buf.WriteString(`{"apps":[`)
	for i, id := range ids {
		if i > 0 {
			buf.WriteByte(',')
		}
		e.writeAppInfo(&buf, e.apps[id], withTasks, deps[id])
	}
	buf.WriteString(`]}`)
	writeRaw(c.w, http.StatusOK, buf.Bytes())
}

// appsInGroup is GET /v2/apps/{group}/*: {"*":[apps of the group]}.
func (e *Emulator) appsInGroup(c *call, group string) {
	gid := absPath(group)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.groups[gid] == nil {
		writeAPIError(c.w, errNotFound(fmt.Sprintf("Group '%s' does not exist", gid)))
		return
	}
	deps := e.depsByAppLocked()
	var buf bytes.Buffer
	buf.WriteString(`{"*":[`)
	n := 0
	for _, id := range sortedKeys(e.apps) {
		if isBelow(id, gid) {
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			e.writeAppInfo(&buf, e.apps[id], true, deps[id])
		}
	}
	buf.WriteString(`]}`)
	writeRaw(c.w, http.StatusOK, buf.Bytes())
}

func unknownApp(id string) *apiError { return errNotFound(fmt.Sprintf("App '%s' does not exist", id)) }

// showApp is GET /v2/apps/{id}: {"app": AppInfo with tasks}.
func (e *Emulator) showApp(c *call, rawID string) {
	id := absPath(rawID)
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[id]
	if a == nil {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	var buf bytes.Buffer
	buf.WriteString(`{"app":`)
	buf.Write(e.appInfoJSON(a, true))
	buf.WriteByte('}')
	writeRaw(c.w, http.StatusOK, buf.Bytes())
}

func (e *Emulator) appTasks(c *call, rawID string) {
	id := absPath(rawID)
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[id]
	if a == nil {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"tasks": e.tasksJSON(a)})
}

func (e *Emulator) listTasks(c *call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	all := []map[string]any{}
	for _, id := range sortedKeys(e.apps) {
		all = append(all, e.tasksJSON(e.apps[id])...)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"tasks": all})
}

// appVersions is GET /v2/apps/{id}/versions, newest first.
func (e *Emulator) appVersions(c *call, rawID string) {
	id := absPath(rawID)
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[id]
	if a == nil {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	vs := make([]string, 0, len(a.versions))
	for i := len(a.versions) - 1; i >= 0; i-- {
		vs = append(vs, fmtTime(a.versions[i].at))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"versions": vs})
}

// appVersion is GET /v2/apps/{id}/versions/{version}: the definition as
// it was (raml.App, no task counts).
func (e *Emulator) appVersion(c *call, rawID, ts string) {
	id := absPath(rawID)
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[id]
	if a == nil {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	t, ok := parseTime(ts)
	v, found := a.versionAt(t)
	if !ok || !found {
		writeAPIError(c.w, errNotFound(fmt.Sprintf("App '%s' does not exist in version %s", id, ts)))
		return
	}
	writeRaw(c.w, http.StatusOK, v.rendered)
}

// createApp is POST /v2/apps (AppsResource.create): 201 with the app as
// AppInfo (no counts yet), Location and Marathon-Deployment-Id; 409 when
// the id is taken.
func (e *Emulator) createApp(c *call) {
	o, aerr := decodeObject(c.body)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	var jv violations
	checkAppJSON(o, "", false, &jv)
	if !jv.empty() {
		writeAPIError(c.w, jv.invalidJSON())
		return
	}
	rawID := o["id"].(string)
	id := canonical(rawID, "/")
	def := normalizeApp(o, id)
	var ov violations
	validateApp(def, rawID, "", "", &ov)
	if !ov.empty() {
		writeAPIError(c.w, ov.notValid())
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.apps[id] != nil {
		writeAPIError(c.w, errMessage(http.StatusConflict, fmt.Sprintf("An app with id [%s] already exists.", id)))
		return
	}
	if e.groups[id] != nil {
		writeAPIError(c.w, errMessage(http.StatusConflict, fmt.Sprintf("A group with id [%s] already exists.", id)))
		return
	}
	d, aerr := e.planLocked([]appChange{{id: id, def: def}}, c.flag("force", false))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	a := e.apps[id]
	e.publishAPIPost(c.clientIP(), c.path, a)
	e.publishGroupChange(parentOf(id), fmtTime(d.version))
	e.startLocked(d)

	// AppInfo.fromParent with OnlyVersion: no versionInfo, zero counts and
	// the new deployment.
	var buf bytes.Buffer
	writeObject(&buf, a.body,
		kv{"version", fmtTime(a.version)},
		kv{"tasksStaged", 0}, kv{"tasksRunning", 0}, kv{"tasksHealthy", 0}, kv{"tasksUnhealthy", 0},
		kv{"deployments", []map[string]string{{"id": d.id}}},
	)
	c.w.Header().Set("Location", location(c, id))
	c.w.Header().Set("Marathon-Deployment-Id", d.id)
	writeRaw(c.w, http.StatusCreated, buf.Bytes())
}

// onlyIDAndVersion is AppValidation.validateAppUpdateVersion: an update
// with a version may name no other AppUpdate field than id.
func onlyIDAndVersion(o map[string]any) bool {
	for k, v := range o {
		if v == nil || k == "id" || k == "version" || !appFields[k] {
			continue
		}
		return false
	}
	return true
}

// targetFor computes an app's new definition from an update body, as
// AppsResource.update / AppHelpers.updateOrCreate do. p is the body's JSON
// path prefix (for multi-app updates).
func (e *Emulator) targetForLocked(id string, o map[string]any, p string, partial bool) (map[string]any, *apiError) {
	existing := e.apps[id]
	if existing != nil && partial {
		var jv violations
		checkAppJSON(o, p, true, &jv)
		if !jv.empty() {
			return nil, jv.invalidJSON()
		}
		if v, ok := present(o, "version"); ok {
			if !onlyIDAndVersion(o) {
				var ov violations
				ov.add(orRoot(p), "The 'version' field may only be combined with the 'id' field.")
				return nil, ov.notValid()
			}
			t, ok := parseTime(v.(string))
			old, found := existing.versionAt(t)
			if !ok || !found {
				return nil, unknownApp(id)
			}
			return old.def, nil
		}
		def := normalizeApp(mergeUpdate(existing.def, o), id)
		var ov violations
		validateApp(def, id, p, "", &ov)
		if !ov.empty() {
			return nil, ov.notValid()
		}
		return def, nil
	}
	// CompleteReplacement: parsed as a new app with the URL's id.
	full := cloneMap(o)
	full["id"] = id
	var jv violations
	checkAppJSON(full, p, false, &jv)
	if !jv.empty() {
		return nil, jv.invalidJSON()
	}
	def := normalizeApp(full, id)
	var ov violations
	validateApp(def, id, p, "", &ov)
	if !ov.empty() {
		return nil, ov.notValid()
	}
	return def, nil
}

// updateApp is PUT (allowCreation) and PATCH /v2/apps/{id}.
func (e *Emulator) updateApp(c *call, rawID string, partial, allowCreation bool) {
	id := absPath(rawID)
	o, aerr := decodeObject(c.body)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	existed := e.apps[id] != nil
	if !existed && !allowCreation {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	def, aerr := e.targetForLocked(id, o, "", partial)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	d, aerr := e.planLocked([]appChange{{id: id, def: def}}, c.flag("force", false))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.publishAPIPost(c.clientIP(), c.path, e.apps[id])
	e.publishGroupChange(parentOf(id), fmtTime(d.version))
	e.startLocked(d)
	status := http.StatusOK
	if !existed {
		status = http.StatusCreated
		c.w.Header().Set("Location", location(c, id))
	}
	deploymentResult(c, status, d)
}

// updateApps is PUT and PATCH /v2/apps with an array: every app in one
// deployment (AppsResource.updateMultiple).
func (e *Emulator) updateApps(c *call, partial, allowCreation bool) {
	v, aerr := decodeBody(c.body)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	arr, ok := v.([]any)
	if !ok {
		var jv violations
		jv.add("", "error.expected.jsarray")
		writeAPIError(c.w, jv.invalidJSON())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var changes []appChange
	for i, x := range arr {
		p := fmt.Sprintf("(%d)", i)
		o, ok := x.(map[string]any)
		if !ok {
			var jv violations
			jv.add(p, "error.expected.jsobject")
			writeAPIError(c.w, jv.invalidJSON())
			return
		}
		rawID, _ := o["id"].(string)
		if rawID == "" {
			writeAPIError(c.w, errMessage(http.StatusUnprocessableEntity, "requirement failed: App Update must have app id set"))
			return
		}
		id := canonical(rawID, "/")
		if e.apps[id] == nil && !allowCreation {
			writeAPIError(c.w, unknownApp(id))
			return
		}
		def, aerr := e.targetForLocked(id, o, p, partial)
		if aerr != nil {
			writeAPIError(c.w, aerr)
			return
		}
		changes = append(changes, appChange{id: id, def: def})
	}
	d, aerr := e.planLocked(changes, c.flag("force", false))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	for _, ch := range changes {
		if a := e.apps[ch.id]; a != nil && d.affectedSet[ch.id] {
			e.publishAPIPost(c.clientIP(), c.path, a)
		}
	}
	e.publishGroupChange("/", fmtTime(d.version))
	e.startLocked(d)
	deploymentResult(c, http.StatusOK, d)
}

// deleteApp is DELETE /v2/apps/{id}. Its force defaults to true in
// AppsResource.delete, unlike every other change: deleting a locked app
// cancels the running deployment unless ?force=false.
func (e *Emulator) deleteApp(c *call, rawID string) {
	id := absPath(rawID)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.apps[id] == nil {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	d, aerr := e.planLocked([]appChange{{id: id}}, c.flag("force", true))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.publishGroupChange(parentOf(id), fmtTime(d.version))
	e.startLocked(d)
	deploymentResult(c, http.StatusOK, d)
}

// restartApp is POST /v2/apps/{id}/restart: a RestartApplication of the
// same definition under a new version.
func (e *Emulator) restartApp(c *call, rawID string) {
	id := absPath(rawID)
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[id]
	if a == nil {
		writeAPIError(c.w, unknownApp(id))
		return
	}
	d, aerr := e.planLocked([]appChange{{id: id, def: a.def, restart: true}}, c.flag("force", false))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.publishGroupChange(parentOf(id), fmtTime(d.version))
	e.startLocked(d)
	deploymentResult(c, http.StatusOK, d)
}

// appInfoWith renders AppInfo with a precomputed deployment list.
func (e *Emulator) appInfoWith(a *appState, withTasks bool, deps []string) []byte {
	var buf bytes.Buffer
	e.writeAppInfo(&buf, a, withTasks, deps)
	return buf.Bytes()
}

// writeAppInfo appends AppInfo to buf without intermediate copies: GET
// /v2/apps renders thousands of them.
func (e *Emulator) writeAppInfo(buf *bytes.Buffer, a *appState, withTasks bool, deps []string) {
	c := a.counts()
	buf.Write(a.rendered[:len(a.rendered)-1])
	var num [20]byte
	field := func(name string, n int) {
		buf.WriteString(name)
		buf.Write(strconv.AppendInt(num[:0], int64(n), 10))
	}
	field(`,"tasksStaged":`, c.staged)
	field(`,"tasksRunning":`, c.running)
	field(`,"tasksHealthy":`, c.healthy)
	field(`,"tasksUnhealthy":`, c.unhealthy)
	buf.WriteString(`,"deployments":[`)
	for i, id := range deps {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"id":"`)
		buf.WriteString(id)
		buf.WriteString(`"}`)
	}
	buf.WriteByte(']')
	if withTasks {
		buf.WriteString(`,"tasks":`)
		buf.Write(mustJSON(e.tasksJSON(a)))
	}
	buf.WriteByte('}')
}
