package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
)

// groupUpdate is a parsed raml.GroupUpdate (types/group.raml).
type groupUpdate struct {
	rawID        string // "" when absent
	apps         []map[string]any
	appsPresent  bool
	appPaths     []string // JSON path of each app, for error details
	groups       []*groupUpdate
	groupsSet    bool
	dependencies []any
	depsSet      bool
	scaleBy      *float64
	version      string
	enforceRole  *bool
}

// parseGroupJSON is the JSON-reader stage for a GroupUpdate at path p.
func parseGroupJSON(o map[string]any, p string, v *violations) *groupUpdate {
	g := &groupUpdate{}
	if x, ok := present(o, "id"); ok {
		if s, ok := x.(string); !ok {
			v.add(p+"/id", "error.expected.jsstring")
		} else if !ramlPathID.MatchString(s) {
			v.add(p+"/id", "error.pattern")
		} else {
			g.rawID = s
		}
	}
	checkObjectArray(o, p, "apps", v, func(app map[string]any, ap string) {
		checkAppJSON(app, ap, false, v)
		g.apps = append(g.apps, app)
		g.appPaths = append(g.appPaths, ap)
	})
	_, g.appsPresent = present(o, "apps")
	checkObjectArray(o, p, "groups", v, func(sub map[string]any, sp string) {
		g.groups = append(g.groups, parseGroupJSON(sub, sp, v))
	})
	_, g.groupsSet = present(o, "groups")
	checkStringArray(o, p, "dependencies", v)
	if x, ok := present(o, "dependencies"); ok {
		g.dependencies, _ = x.([]any)
		g.depsSet = true
	}
	checkNumber(o, p, "scaleBy", false, 0, big, v)
	if x, ok := present(o, "scaleBy"); ok {
		if f, ok := asNumber(x); ok {
			g.scaleBy = &f
		}
	}
	checkString(o, p, "version", v)
	g.version, _ = o["version"].(string)
	checkBool(o, p, "enforceRole", v)
	if b, ok := o["enforceRole"].(bool); ok {
		g.enforceRole = &b
	}
	return g
}

// groupPlan is the outcome of applying a group update to the tree.
type groupPlan struct {
	changes      []appChange
	createGroups []string
	removeGroups []string
	deps         map[string][]any
	enforceRole  map[string]bool
}

// planGroupLocked validates and normalises the apps of g (group id gid), then
// recurses into its groups: UpdateGroupStructureOp with
// Group.validNestedGroupUpdateWithBase's checks.
func (e *Emulator) planGroupLocked(g *groupUpdate, gid string, p string, plan *groupPlan, ov *violations, existsAlready bool, idx treeIndex) {
	children := children{apps: idx.apps[gid], groups: idx.groups[gid]}
	if !existsAlready {
		plan.createGroups = append(plan.createGroups, gid)
	}
	if g.appsPresent {
		seen := map[string]bool{}
		for i, app := range g.apps {
			rawID := app["id"].(string)
			id := canonical(rawID, gid)
			def := normalizeApp(app, id)
			validateApp(def, rawID, g.appPaths[i], gid, ov)
			seen[id] = true
			plan.changes = append(plan.changes, appChange{id: id, def: def})
		}
		for _, id := range children.apps {
			if !seen[id] {
				plan.changes = append(plan.changes, appChange{id: id})
			}
		}
	}
	if g.groupsSet {
		seen := map[string]bool{}
		for i, sub := range g.groups {
			if sub.rawID == "" {
				ov.add(fmt.Sprintf("%s/groups(%d)/id", p, i), "not defined")
				continue
			}
			sid := canonical(sub.rawID, gid)
			seen[sid] = true
			e.planGroupLocked(sub, sid, fmt.Sprintf("%s/groups(%d)", p, i), plan, ov, e.groups[sid] != nil, idx)
		}
		for _, sid := range children.groups {
			if !seen[sid] {
				e.removeSubtreeLocked(sid, plan)
			}
		}
	}
	if g.depsSet {
		deps := make([]any, 0, len(g.dependencies))
		for _, d := range g.dependencies {
			deps = append(deps, canonical(d.(string), gid))
		}
		plan.deps[gid] = deps
	}
	if g.enforceRole != nil {
		plan.enforceRole[gid] = *g.enforceRole
	}
}

func (e *Emulator) removeSubtreeLocked(gid string, plan *groupPlan) {
	for id := range e.apps {
		if isBelow(id, gid) {
			plan.changes = append(plan.changes, appChange{id: id})
		}
	}
	plan.removeGroups = append(plan.removeGroups, gid)
}

type children struct{ apps, groups []string }

// treeIndex lists the direct apps and subgroups of every group, built once
// per request so that walking the tree stays linear.
type treeIndex struct{ apps, groups map[string][]string }

func (e *Emulator) treeIndexLocked() treeIndex {
	idx := treeIndex{apps: map[string][]string{}, groups: map[string][]string{}}
	for id := range e.apps {
		idx.apps[parentOf(id)] = append(idx.apps[parentOf(id)], id)
	}
	for id := range e.groups {
		if id != "/" {
			idx.groups[parentOf(id)] = append(idx.groups[parentOf(id)], id)
		}
	}
	return idx
}

// applyGroupStructureLocked stores the group-level part of a plan after
// its app changes were accepted.
func (e *Emulator) applyGroupStructureLocked(plan *groupPlan, d *deployment) {
	for _, gid := range plan.removeGroups {
		for id := range e.groups {
			if id != "/" && isBelow(id, gid) {
				delete(e.groups, id)
			}
		}
	}
	for _, gid := range plan.createGroups {
		if e.groups[gid] == nil {
			e.groups[gid] = &groupState{id: gid}
		}
		if gid != "/" {
			e.touchGroupsLocked(gid, d.version)
		}
		e.groups[gid].version = d.version
	}
	for gid, deps := range plan.deps {
		if gs := e.groups[gid]; gs != nil {
			gs.dependencies = deps
		}
	}
	for gid, er := range plan.enforceRole {
		if gs := e.groups[gid]; gs != nil {
			gs.enforceRole = er
		}
	}
}

func unknownGroup(id string) *apiError {
	return errNotFound(fmt.Sprintf("Group '%s' does not exist", id))
}

func (e *Emulator) routeGroup(c *call, rest string) {
	switch c.r.Method {
	case http.MethodGet:
		e.showGroup(c, rest)
	case http.MethodPost:
		e.changeGroup(c, rest, true)
	case http.MethodPut:
		e.changeGroup(c, rest, false)
	case http.MethodDelete:
		e.deleteGroup(c, rest)
	default:
		methodNotAllowed(c)
	}
}

// showGroup is GET /v2/groups[/{id}]: the group with its apps and
// nested groups (GroupInfo, all embedded by default).
func (e *Emulator) showGroup(c *call, rest string) {
	gid := absPath(rest)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.groups[gid] == nil {
		writeAPIError(c.w, unknownGroup(gid))
		return
	}
	idx := e.treeIndexLocked()
	var buf bytes.Buffer
	e.renderGroupLocked(&buf, gid, idx.apps, idx.groups)
	writeRaw(c.w, http.StatusOK, buf.Bytes())
}

func (e *Emulator) renderGroupLocked(buf *bytes.Buffer, gid string, appsBy, groupsBy map[string][]string) {
	g := e.groups[gid]
	fmt.Fprintf(buf, `{"id":%q,"apps":[`, gid)
	apps := appsBy[gid]
	sortStrings(apps)
	for i, id := range apps {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e.apps[id].rendered)
	}
	buf.WriteString(`],"pods":[],"groups":[`)
	subs := groupsBy[gid]
	sortStrings(subs)
	for i, sid := range subs {
		if i > 0 {
			buf.WriteByte(',')
		}
		e.renderGroupLocked(buf, sid, appsBy, groupsBy)
	}
	deps := g.dependencies
	if deps == nil {
		deps = []any{}
	}
	fmt.Fprintf(buf, `],"dependencies":%s,"version":%q,"enforceRole":%t}`, mustJSON(deps), fmtTime(g.version), g.enforceRole)
}

// changeGroup is POST (create) and PUT (update) /v2/groups[/{id}]
// (GroupsResource.createWithPath and update).
func (e *Emulator) changeGroup(c *call, rest string, create bool) {
	rootPath := absPath(rest)
	o, aerr := decodeObject(c.body)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	var jv violations
	g := parseGroupJSON(o, "", &jv)
	if !jv.empty() {
		writeAPIError(c.w, jv.invalidJSON())
		return
	}
	gid := rootPath
	if g.rawID != "" {
		gid = canonical(g.rawID, rootPath)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if create {
		if e.groups[gid] != nil {
			writeAPIError(c.w, errMessage(http.StatusConflict, fmt.Sprintf("Group %s is already created. Use PUT to change this group.", gid)))
			return
		}
		if e.apps[gid] != nil {
			writeAPIError(c.w, errMessage(http.StatusConflict, fmt.Sprintf("An app with the path %s already exists.", gid)))
			return
		}
	}
	if g.version != "" {
		// Group versions are not kept by the emulator.
		writeAPIError(c.w, errMessage(http.StatusUnprocessableEntity, fmt.Sprintf("Group %s not available in version %s", gid, g.version)))
		return
	}
	plan := &groupPlan{deps: map[string][]any{}, enforceRole: map[string]bool{}}
	if g.scaleBy != nil {
		// GroupApiService.scaleChange: every app below scales by the factor.
		for _, id := range sortedKeys(e.apps) {
			if isBelow(id, gid) {
				def := cloneMap(e.apps[id].def)
				def["instances"] = intNum(int(math.Ceil(float64(instancesOf(def)) * *g.scaleBy)))
				plan.changes = append(plan.changes, appChange{id: id, def: def})
			}
		}
	} else {
		var ov violations
		e.planGroupLocked(g, gid, "", plan, &ov, e.groups[gid] != nil, e.treeIndexLocked())
		if !ov.empty() {
			writeAPIError(c.w, ov.notValid())
			return
		}
	}
	d, aerr := e.planLocked(plan.changes, c.flag("force", false))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.applyGroupStructureLocked(plan, d)
	for _, ch := range plan.changes {
		if a := e.apps[ch.id]; a != nil && d.affectedSet[ch.id] {
			e.publishAPIPost(c.clientIP(), c.path, a)
		}
	}
	e.publishGroupChange(gid, fmtTime(d.version))
	e.startLocked(d)
	if create {
		c.w.Header().Set("Location", location(c, gid))
		deploymentResult(c, http.StatusCreated, d)
		return
	}
	deploymentResult(c, http.StatusOK, d)
}

// deleteGroup is DELETE /v2/groups[/{id}]: the group, its apps and
// subgroups go in one deployment; the root group is emptied.
func (e *Emulator) deleteGroup(c *call, rest string) {
	gid := absPath(rest)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.groups[gid] == nil {
		writeAPIError(c.w, unknownGroup(gid))
		return
	}
	plan := &groupPlan{deps: map[string][]any{}, enforceRole: map[string]bool{}}
	e.removeSubtreeLocked(gid, plan)
	d, aerr := e.planLocked(plan.changes, c.flag("force", false))
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.applyGroupStructureLocked(plan, d)
	e.publishGroupChange(parentOf(gid), fmtTime(d.version))
	e.startLocked(d)
	deploymentResult(c, http.StatusOK, d)
}

// load seeds apps (see Emulator.Load).
func (e *Emulator) load(data []byte) error {
	v, aerr := decodeBody(data)
	if aerr != nil {
		return errors.New("emulator: load: " + aerr.Error())
	}
	var g *groupUpdate
	var jv violations
	switch x := v.(type) {
	case []any:
		g = parseGroupJSON(map[string]any{"apps": x}, "", &jv)
	case map[string]any:
		g = parseGroupJSON(x, "", &jv)
	default:
		return errors.New("emulator: load: want an array of apps, {\"apps\":[…]} or a group")
	}
	if !jv.empty() {
		return errors.New("emulator: load: " + jv.invalidJSON().Error())
	}
	gid := "/"
	if g.rawID != "" {
		gid = canonical(g.rawID, "/")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var ov violations
	var defs []map[string]any
	var groups []string
	var walk func(g *groupUpdate, gid, p string)
	walk = func(g *groupUpdate, gid, p string) {
		groups = append(groups, gid)
		for i, app := range g.apps {
			rawID := app["id"].(string)
			def := normalizeApp(app, canonical(rawID, gid))
			validateApp(def, rawID, g.appPaths[i], "", &ov)
			defs = append(defs, def)
		}
		for i, sub := range g.groups {
			if sub.rawID == "" {
				ov.add(fmt.Sprintf("%s/groups(%d)/id", p, i), "not defined")
				continue
			}
			walk(sub, canonical(sub.rawID, gid), fmt.Sprintf("%s/groups(%d)", p, i))
		}
	}
	walk(g, gid, "")
	if !ov.empty() {
		return errors.New("emulator: load: " + ov.notValid().Error())
	}
	version := e.stampLocked()
	for _, gid := range groups {
		if e.groups[gid] == nil {
			e.groups[gid] = &groupState{id: gid}
		}
		e.groups[gid].version = version
		if gid != "/" {
			e.touchGroupsLocked(gid, version)
		}
	}
	for _, def := range defs {
		id := def["id"].(string)
		st := &appState{id: id}
		st.setDef(def, encodeDef(def), version, kindCreate)
		e.seedTasksLocked(st)
		e.apps[id] = st
		e.touchGroupsLocked(id, version)
	}
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }
