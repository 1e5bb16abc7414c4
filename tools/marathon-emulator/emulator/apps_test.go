package emulator

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// AppConversion.appUpdateRamlReader: each field of an update replaces
// the old value whole (labels = update.labels.getOrElse(app.labels),
// container = update.container.orElse(app.container)); absent fields keep
// theirs; unknown fields are dropped by the RAML reader.
func TestPartialUpdateReplacesTopLevelFieldsWhole(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(200, e.do("PUT", "/v2/apps/dev/app1",
		`{"labels":{"slipway.policy":"major"},"container":{"type":"DOCKER","docker":{"image":"registry.local/apps/app1:1.1.0"}},"notAMarathonField":42}`))
	e.wait(r.json(t)["deploymentId"].(string))

	app := e.app("/dev/app1")
	if got, want := app["labels"], map[string]any{"slipway.policy": "major"}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels = %v, want %v (replaced whole, team label gone)", got, want)
	}
	if got := app["env"]; !reflect.DeepEqual(got, map[string]any{"LOG_LEVEL": "info"}) {
		t.Errorf("env = %v, want the seeded env kept", got)
	}
	if intField(app, "instances") != 2 || app["cpus"].(float64) != 0.1 {
		t.Errorf("instances/cpus changed: %v/%v", app["instances"], app["cpus"])
	}
	docker := app["container"].(map[string]any)["docker"].(map[string]any)
	if docker["image"] != "registry.local/apps/app1:1.1.0" {
		t.Errorf("image = %v", docker["image"])
	}
	if docker["forcePullImage"] != false {
		t.Errorf("forcePullImage = %v: the old container must not be merged into the new one", docker["forcePullImage"])
	}
	if _, ok := app["notAMarathonField"]; ok {
		t.Error("unknown field stored")
	}
}

// AppsResource.replace: partialUpdate=false parses the body as a complete
// app (CompleteReplacement), so fields not sent fall back to defaults.
func TestPutWithoutPartialUpdateReplacesTheApp(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(200, e.do("PUT", "/v2/apps/dev/app1?partialUpdate=false", `{"container":{"type":"DOCKER","docker":{"image":"x:2"}}}`))
	e.wait(r.json(t)["deploymentId"].(string))
	app := e.app("/dev/app1")
	if len(app["labels"].(map[string]any)) != 0 || intField(app, "instances") != 1 || len(app["healthChecks"].([]any)) != 0 {
		t.Errorf("complete replacement kept old fields: labels %v instances %v", app["labels"], app["instances"])
	}
}

// AppValidation.validateAppUpdateVersion: "The 'version' field may only be
// combined with the 'id' field." — which is what a client gets when it
// PUTs back the app a GET returned (it carries version and everything
// else).
func TestPutBackGetResponseIsRejected(t *testing.T) {
	e := newEnv(t, Options{})
	body, _ := json.Marshal(e.app("/dev/app1"))
	r := e.must(422, e.do("PUT", "/v2/apps/dev/app1", string(body)))
	want := `{"message":"Object is not valid","details":[{"path":"/","errors":["The 'version' field may only be combined with the 'id' field."]}]}`
	if string(r.body) != want {
		t.Errorf("body %s\nwant %s", r.body, want)
	}
	if len(e.emu.RunningDeployments()) != 0 {
		t.Error("a rejected update started a deployment")
	}
}

// AppHelpers.updateOrCreate: an update with only id and version rolls the
// app back to that version; GroupVersioningUtil gives it a new version.
func TestVersionRollback(t *testing.T) {
	e := newEnv(t, Options{})
	v1 := e.app("/dev/app1")["version"].(string)
	e.wait(e.must(200, e.putImage("/dev/app1", "registry.local/apps/app1:2.0.0", "")).json(t)["deploymentId"].(string))
	if image(e.app("/dev/app1")) != "registry.local/apps/app1:2.0.0" {
		t.Fatal("update not applied")
	}

	versions := e.must(200, e.do("GET", "/v2/apps/dev/app1/versions", "")).json(t)["versions"].([]any)
	if len(versions) != 2 || versions[1] != v1 {
		t.Fatalf("versions = %v, want [new, %s]", versions, v1)
	}
	old := e.must(200, e.do("GET", "/v2/apps/dev/app1/versions/"+v1, "")).json(t)
	if image(old) != "registry.local/apps/app1:1.0.0" || old["version"] != v1 {
		t.Errorf("version %s = %v", v1, old)
	}

	r := e.must(200, e.do("PUT", "/v2/apps/dev/app1", `{"id":"/dev/app1","version":"`+v1+`"}`))
	e.wait(r.json(t)["deploymentId"].(string))
	app := e.app("/dev/app1")
	if image(app) != "registry.local/apps/app1:1.0.0" {
		t.Errorf("image after rollback = %s", image(app))
	}
	if app["version"] == v1 {
		t.Error("a rollback must create a new version")
	}

	e.must(404, e.do("PUT", "/v2/apps/dev/app1", `{"version":"2001-01-01T00:00:00.000Z"}`))
}

// AppsResource.update: PUT creates a missing app (201, Location), PATCH
// does not (allowCreation = false → 404).
func TestPutCreatesPatchDoesNot(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(404, e.do("PATCH", "/v2/apps/dev/new", `{"cmd":"sleep 1"}`))
	if string(r.body) != `{"message":"App '/dev/new' does not exist"}` {
		t.Errorf("404 body %s", r.body)
	}
	r = e.must(201, e.do("PUT", "/v2/apps/dev/new", `{"cmd":"sleep 1"}`))
	if r.header.Get("Marathon-Deployment-Id") == "" || !strings.HasSuffix(r.header.Get("Location"), "/dev/new") {
		t.Errorf("headers %v", r.header)
	}
	e.must(200, e.do("PATCH", "/v2/apps/dev/new?force=true", `{"cmd":"sleep 2"}`))
}

// AppsResource.create: 201 with Location and Marathon-Deployment-Id, the
// app with zero counts and its deployment; a taken id is 409 "An app with
// id [/x] already exists." (apps.raml).
func TestCreateApp(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(201, e.do("POST", "/v2/apps", `{"id":"dev/web","container":{"docker":{"image":"nginx:1.25"}},"instances":2}`))
	dep := r.header.Get("Marathon-Deployment-Id")
	body := r.json(t)
	if body["id"] != "/dev/web" || intField(body, "tasksRunning") != 0 {
		t.Errorf("body %s", r.body)
	}
	if deps := body["deployments"].([]any); len(deps) != 1 || deps[0].(map[string]any)["id"] != dep {
		t.Errorf("deployments %v, header %s", deps, dep)
	}
	if !strings.HasSuffix(r.header.Get("Location"), "/dev/web") {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	r = e.must(409, e.do("POST", "/v2/apps", `{"id":"/dev/web","cmd":"x"}`))
	if string(r.body) != `{"message":"An app with id [/dev/web] already exists."}` {
		t.Errorf("409 body %s", r.body)
	}
	e.wait(dep)
	if app := e.app("/dev/web"); intField(app, "tasksRunning") != 2 || intField(app, "tasksHealthy") != 0 {
		// TaskCounts.scala: tasks of apps without health checks count as
		// neither healthy nor unhealthy.
		t.Errorf("counts running %v healthy %v", app["tasksRunning"], app["tasksHealthy"])
	}
}

// RestResource.unknownApp: 404 {"message":"App '/x' does not exist"}.
func TestUnknownApp(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(404, e.do("GET", "/v2/apps/nope", ""))
	if string(r.body) != `{"message":"App '/nope' does not exist"}` {
		t.Errorf("body %s", r.body)
	}
	e.must(404, e.do("DELETE", "/v2/apps/nope", ""))
	e.must(404, e.do("POST", "/v2/apps/nope/restart", ""))
}

// AppsResource.index: id is a case-insensitive "contains" filter, label a
// label selector (apps.raml: "my_label, environment==production, tier!=frontend").
func TestListAppsFilters(t *testing.T) {
	e := newEnv(t, Options{})
	ids := func(query string) []string {
		r := e.must(200, e.do("GET", "/v2/apps"+query, ""))
		var out []string
		for _, a := range r.json(t)["apps"].([]any) {
			out = append(out, a.(map[string]any)["id"].(string))
		}
		sort.Strings(out)
		return out
	}
	cases := map[string][]string{
		"":                                 {"/dev/app1", "/dev/app2", "/prd/app1"},
		"?id=/dev":                         {"/dev/app1", "/dev/app2"},
		"?id=APP1":                         {"/dev/app1", "/prd/app1"},
		"?label=slipway.policy":            {"/dev/app1", "/prd/app1"},
		"?label=team==search":              {"/dev/app2"},
		"?label=team!=search":              {"/dev/app1"},
		"?label=slipway.policy,team":       {"/dev/app1"},
		"?label=team+in+(search,payments)": {"/dev/app1", "/dev/app2"},
		"?label=team+notin+(search)":       {"/dev/app1"},
		"?embed=apps.deployments&embed=apps.counts&label=nope": nil,
	}
	for q, want := range cases {
		if got := ids(q); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	e.must(422, e.do("GET", "/v2/apps?label=a==", ""))
}

// appWriter + AppInfo: GET adds version, versionInfo, the task counts and
// the running deployments; defaults come from app.raml.
func TestGetAppShape(t *testing.T) {
	e := newEnv(t, Options{})
	app := e.app("/dev/app2")
	for k, want := range map[string]any{
		"instances": 1.0, "cpus": 1.0, "mem": 128.0, "disk": 0.0, "backoffFactor": 1.15,
		"killSelection": "YOUNGEST_FIRST", "tasksRunning": 1.0, "tasksHealthy": 0.0,
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
	} {
		if !reflect.DeepEqual(app[k], want) {
			t.Errorf("%s = %v, want %v", k, app[k], want)
		}
	}
	vi := app["versionInfo"].(map[string]any)
	if vi["lastConfigChangeAt"] != app["version"] || vi["lastScalingAt"] != app["version"] {
		t.Errorf("versionInfo %v, version %v", vi, app["version"])
	}
	hc := e.app("/dev/app1")["healthChecks"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"gracePeriodSeconds": 300.0, "intervalSeconds": 60.0, "timeoutSeconds": 20.0, "maxConsecutiveFailures": 3.0, "portIndex": 0.0} {
		if hc[k] != want {
			t.Errorf("healthCheck %s = %v, want %v", k, hc[k], want)
		}
	}
	if seeded := e.app("/dev/app1"); intField(seeded, "tasksHealthy") != 2 || len(seeded["deployments"].([]any)) != 0 {
		t.Errorf("seeded app: healthy %v deployments %v", seeded["tasksHealthy"], seeded["deployments"])
	}

	// Emulator.App returns the same object.
	raw, ok := e.emu.App("dev/app2")
	if !ok {
		t.Fatal("App: not found")
	}
	var viaGo map[string]any
	if err := json.Unmarshal(raw, &viaGo); err != nil || viaGo["id"] != "/dev/app2" {
		t.Errorf("App() = %s, %v", raw, err)
	}
}

// AppsResource.updateMultiple: PUT /v2/apps with an array changes every
// app in one deployment.
func TestUpdateMultipleApps(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(200, e.do("PUT", "/v2/apps", `[{"id":"/dev/app1","instances":3},{"id":"/dev/app2","cmd":"sleep 5"}]`))
	dep := r.json(t)["deploymentId"].(string)
	deps := e.must(200, e.do("GET", "/v2/deployments", "")).body
	var list []map[string]any
	_ = json.Unmarshal(deps, &list)
	if len(list) != 1 || !reflect.DeepEqual(list[0]["affectedApps"], []any{"/dev/app1", "/dev/app2"}) {
		t.Fatalf("deployments %s", deps)
	}
	// A scale-only change is a ScaleApplication, a cmd change a restart
	// (DeploymentPlan.dependencyOrderedSteps).
	actions := list[0]["steps"].([]any)[0].(map[string]any)["actions"].([]any)
	if actions[0].(map[string]any)["action"] != "ScaleApplication" || actions[1].(map[string]any)["action"] != "RestartApplication" {
		t.Errorf("actions %v", actions)
	}
	e.wait(dep)
	if intField(e.app("/dev/app1"), "tasksRunning") != 3 {
		t.Error("not scaled")
	}
}
