package emulator

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// GroupsResource.createWithPath + UpdateGroupStructureOp.createGroup:
// nested groups and apps with ids relative to their group, created in one
// deployment; 201 with the deployment result.
func TestCreateGroupWithNestedApps(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.events("?event_type=deployment_info&event_type=deployment_success")
	r := e.must(201, e.do("POST", "/v2/groups", `{
		"id": "/shop",
		"apps": [{"id": "gateway", "cmd": "gw"}],
		"groups": [{"id": "backend", "apps": [
			{"id": "orders", "container": {"docker": {"image": "orders:1"}}, "instances": 2},
			{"id": "/shop/backend/billing", "cmd": "bill"}
		]}]
	}`))
	dep := r.json(t)["deploymentId"].(string)
	if !strings.HasSuffix(r.header.Get("Location"), "/shop") || r.header.Get("Marathon-Deployment-Id") != dep {
		t.Errorf("headers %v", r.header)
	}
	info := s.expectFor("deployment_info", dep)
	steps := info.data["plan"].(map[string]any)["steps"].([]any)
	var started []string
	for _, a := range steps[0].(map[string]any)["actions"].([]any) {
		started = append(started, a.(map[string]any)["app"].(string))
	}
	sort.Strings(started)
	if want := []string{"/shop/backend/billing", "/shop/backend/orders", "/shop/gateway"}; !reflect.DeepEqual(started, want) {
		t.Errorf("one deployment should start %v, got %v", want, started)
	}
	s.expectFor("deployment_success", dep)

	g := e.must(200, e.do("GET", "/v2/groups/shop", "")).json(t)
	if g["id"] != "/shop" || len(g["apps"].([]any)) != 1 {
		t.Fatalf("group %v", g)
	}
	sub := g["groups"].([]any)[0].(map[string]any)
	if sub["id"] != "/shop/backend" || len(sub["apps"].([]any)) != 2 {
		t.Errorf("subgroup %v", sub)
	}
	root := e.must(200, e.do("GET", "/v2/groups", "")).json(t)
	var top []string
	for _, x := range root["groups"].([]any) {
		top = append(top, x.(map[string]any)["id"].(string))
	}
	if root["id"] != "/" || !reflect.DeepEqual(top, []string{"/dev", "/prd", "/shop"}) {
		t.Errorf("root %v groups %v", root["id"], top)
	}
	if intField(e.app("/shop/backend/orders"), "tasksRunning") != 2 {
		t.Error("orders not running")
	}

	// "Group /shop is already created. Use PUT to change this group."
	r = e.must(409, e.do("POST", "/v2/groups", `{"id":"/shop"}`))
	if string(r.body) != `{"message":"Group /shop is already created. Use PUT to change this group."}` {
		t.Errorf("409 body %s", r.body)
	}
	e.must(404, e.do("GET", "/v2/groups/nope", ""))
}

// Validation paths inside groups render as "/groups(0)/apps(1)/…"
// (Validation.allViolations: Indexed → "(i)", Generic/Explicit → "/name").
func TestGroupValidationPaths(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(422, e.do("POST", "/v2/groups", `{"id":"/shop","groups":[{"id":"web","apps":[
		{"id":"a","cmd":"x"},
		{"id":"b","container":{"docker":{"image":""}}}]}]}`))
	want := `{"message":"Object is not valid","details":[{"path":"/groups(0)/apps(1)/container/docker/image","errors":["must not be empty"]}]}`
	if string(r.body) != want {
		t.Errorf("body %s\nwant %s", r.body, want)
	}
	r = e.must(422, e.do("POST", "/v2/groups", `{"id":"/shop","apps":[{"id":"a","cmd":"x","instances":-2}]}`))
	if want := `{"message":"Invalid JSON","details":[{"path":"/apps(0)/instances","errors":["error.min"]}]}`; string(r.body) != want {
		t.Errorf("body %s\nwant %s", r.body, want)
	}
	// PathId.validPathWithBase: an app of a group must be its child.
	r = e.must(422, e.do("POST", "/v2/groups", `{"id":"/shop","apps":[{"id":"/elsewhere/a","cmd":"x"}]}`))
	if want := `{"message":"Object is not valid","details":[{"path":"/apps(0)/id","errors":["Identifier is not child of '/shop'"]}]}`; string(r.body) != want {
		t.Errorf("body %s\nwant %s", r.body, want)
	}
	e.must(404, e.do("GET", "/v2/groups/shop", ""))
}

// UpdateGroupStructureOp.execute: a PUT with "apps" replaces the group's
// apps; apps not listed are stopped in the same deployment.
func TestPutGroupReplacesApps(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(200, e.do("PUT", "/v2/groups/dev", `{"apps":[{"id":"app1","container":{"docker":{"image":"registry.local/apps/app1:3"}},"instances":2}]}`))
	dep := r.json(t)["deploymentId"].(string)
	var list []map[string]any
	_ = json.Unmarshal(e.must(200, e.do("GET", "/v2/deployments", "")).body, &list)
	if len(list) != 1 || list[0]["id"] != dep {
		t.Fatalf("deployments %v", list)
	}
	steps := list[0]["steps"].([]any)
	first := steps[0].(map[string]any)["actions"].([]any)[0].(map[string]any)
	if first["action"] != "StopApplication" || first["app"] != "/dev/app2" {
		t.Errorf("first step %v", first)
	}
	e.wait(dep)
	e.must(404, e.do("GET", "/v2/apps/dev/app2", ""))
	if image(e.app("/dev/app1")) != "registry.local/apps/app1:3" {
		t.Error("app1 not updated")
	}

	// DELETE removes the group with its apps.
	e.wait(e.must(200, e.do("DELETE", "/v2/groups/dev", "")).json(t)["deploymentId"].(string))
	e.must(404, e.do("GET", "/v2/groups/dev", ""))
	e.must(404, e.do("GET", "/v2/apps/dev/app1", ""))
}
