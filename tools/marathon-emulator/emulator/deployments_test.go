package emulator

import (
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
)

// DeploymentActor: each step publishes deployment_info, then
// deployment_step_success; MarathonSchedulerActor.deploymentSuccess
// publishes deployment_success. GET /v2/deployments lists running
// deployments only (deployments.raml).
func TestDeploymentLifecycle(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.events("?event_type=deployment_info&event_type=deployment_step_success&event_type=deployment_success&event_type=deployment_failed")
	r := e.must(200, e.putImage("/dev/app1", "registry.local/apps/app1:1.1.0", ""))
	body := r.json(t)
	dep := body["deploymentId"].(string)
	if r.header.Get("Marathon-Deployment-Id") != dep {
		t.Errorf("Marathon-Deployment-Id %q, body %s", r.header.Get("Marathon-Deployment-Id"), r.body)
	}

	info := s.next()
	if info.typ != "deployment_info" || planID(info) != dep {
		t.Fatalf("first event %s %v", info.typ, info.data)
	}
	wantStep := map[string]any{"actions": []any{map[string]any{"action": "RestartApplication", "app": "/dev/app1"}}}
	if !reflect.DeepEqual(info.data["currentStep"], wantStep) {
		t.Errorf("currentStep %v", info.data["currentStep"])
	}
	plan := info.data["plan"].(map[string]any)
	if plan["version"] != body["version"] || !reflect.DeepEqual(plan["steps"], []any{wantStep}) {
		t.Errorf("plan %v", plan)
	}
	if ev := s.next(); ev.typ != "deployment_step_success" || planID(ev) != dep {
		t.Fatalf("second event %s %v", ev.typ, ev.data)
	}
	done := s.next()
	if done.typ != "deployment_success" || done.data["id"] != dep || done.data["eventType"] != "deployment_success" || done.data["timestamp"] == "" {
		t.Fatalf("third event %s %v", done.typ, done.data)
	}

	var running []any
	_ = json.Unmarshal(e.must(200, e.do("GET", "/v2/deployments", "")).body, &running)
	if len(running) != 0 {
		t.Errorf("GET /v2/deployments after success: %v", running)
	}
	app := e.app("/dev/app1")
	if intField(app, "tasksHealthy") != 2 || intField(app, "tasksRunning") != 2 || len(app["deployments"].([]any)) != 0 {
		t.Errorf("after success: healthy %v running %v deployments %v", app["tasksHealthy"], app["tasksRunning"], app["deployments"])
	}
	for _, task := range app["tasks"].([]any) {
		if task.(map[string]any)["version"] != body["version"] {
			t.Errorf("task of the old version still running: %v", task)
		}
	}
	if res := e.wait(dep); !res.Success {
		t.Errorf("WaitDeployment = %+v", res)
	}
}

// While a deployment runs, GET /v2/deployments shows it and the app
// points at it (AppInfo.deployments, DeploymentStepInfo).
func TestRunningDeploymentIsListed(t *testing.T) {
	e := newEnv(t, Options{UnhealthyImages: regexp.MustCompile(`:broken$`)})
	dep := e.must(200, e.putImage("/dev/app1", "x:broken", "")).json(t)["deploymentId"].(string)
	var list []map[string]any
	_ = json.Unmarshal(e.must(200, e.do("GET", "/v2/deployments", "")).body, &list)
	if len(list) != 1 {
		t.Fatalf("deployments %v", list)
	}
	d := list[0]
	if d["id"] != dep || !reflect.DeepEqual(d["affectedApps"], []any{"/dev/app1"}) || d["currentStep"] != 1.0 || d["totalSteps"] != 1.0 {
		t.Errorf("deployment %v", d)
	}
	if ca := d["currentActions"].([]any); len(ca) != 1 || ca[0].(map[string]any)["action"] != "RestartApplication" {
		t.Errorf("currentActions %v", ca)
	}
	if deps := e.app("/dev/app1")["deployments"].([]any); len(deps) != 1 || deps[0].(map[string]any)["id"] != dep {
		t.Errorf("app deployments %v", deps)
	}
}

// "Deployments never fail by themselves": a deployment whose new tasks
// never get healthy runs until cancelled; its tasks show as unhealthy
// (TaskCounts: tasksUnhealthy counts failing health checks).
func TestUnhealthyImageNeverFinishes(t *testing.T) {
	e := newEnv(t, Options{UnhealthyImages: regexp.MustCompile(`:broken$`)})
	s := e.events("?event_type=health_status_changed_event&event_type=deployment_success")
	dep := e.must(200, e.putImage("/dev/app1", "registry.local/apps/app1:broken", "")).json(t)["deploymentId"].(string)
	for i := 0; i < 2; i++ {
		ev := s.next()
		if ev.typ != "health_status_changed_event" || ev.data["alive"] != false || ev.data["appId"] != "/dev/app1" {
			t.Fatalf("event %s %v", ev.typ, ev.data)
		}
	}
	// Settle fires every pending health decision: nothing is left that
	// could still finish the deployment.
	e.emu.Settle()
	if ids := e.emu.RunningDeployments(); len(ids) != 1 || ids[0] != dep {
		t.Fatalf("running %v, want [%s]", ids, dep)
	}
	app := e.app("/dev/app1")
	if intField(app, "tasksUnhealthy") != 2 || intField(app, "tasksHealthy") != 2 || intField(app, "tasksRunning") != 4 {
		t.Errorf("counts: running %v healthy %v unhealthy %v", app["tasksRunning"], app["tasksHealthy"], app["tasksUnhealthy"])
	}
}

// AppLockedException (Exception.scala): 409 with Marathon's literal
// message, which keeps the "<DEPLOYMENT_ID>" placeholder, and the ids in
// "deployments". With force=true the running deployment is cancelled
// (DeploymentCanceledException "The upgrade has been cancelled").
func TestLockedAppAndForce(t *testing.T) {
	e := newEnv(t, Options{UnhealthyImages: regexp.MustCompile(`:broken$`)})
	s := e.events("?event_type=deployment_failed&event_type=deployment_success")
	first := e.must(200, e.putImage("/dev/app1", "x:broken", "")).json(t)["deploymentId"].(string)

	want := `{"message":"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.","deployments":[{"id":"` + first + `"}]}`
	for _, r := range []response{
		e.putImage("/dev/app1", "x:2", ""),
		e.do("PATCH", "/v2/apps/dev/app1", `{"instances":5}`),
		e.do("POST", "/v2/apps/dev/app1/restart", ""),
		e.do("DELETE", "/v2/apps/dev/app1?force=false", ""),
	} {
		e.must(409, r)
		if string(r.body) != want {
			t.Errorf("409 body %s\nwant %s", r.body, want)
		}
	}
	// Other apps are not locked.
	e.must(200, e.do("PATCH", "/v2/apps/dev/app2", `{"instances":2}`))

	second := e.must(200, e.putImage("/dev/app1", "x:2", "?force=true")).json(t)["deploymentId"].(string)
	failed := s.expectFor("deployment_failed", first)
	if failed.data["reason"] != "The upgrade has been cancelled" {
		t.Errorf("reason %v", failed.data["reason"])
	}
	s.expectFor("deployment_success", second)
	if image(e.app("/dev/app1")) != "x:2" {
		t.Error("forced update not applied")
	}
}

// DeploymentsResource.cancel with force=false: the deployment is
// cancelled and a new one reverts its changes (200 {"deploymentId",
// "version"}); the original ends deployment_failed, the rollback
// deployment_success, the old image is back under a new version.
func TestDeleteDeploymentRollsBack(t *testing.T) {
	e := newEnv(t, Options{UnhealthyImages: regexp.MustCompile(`:broken$`)})
	s := e.events("?event_type=deployment_failed&event_type=deployment_success")
	before := e.app("/dev/app1")
	dep := e.must(200, e.putImage("/dev/app1", "registry.local/apps/app1:broken", "")).json(t)["deploymentId"].(string)

	r := e.must(200, e.do("DELETE", "/v2/deployments/"+dep, ""))
	body := r.json(t)
	rollback := body["deploymentId"].(string)
	if rollback == dep || body["version"] == nil || r.header.Get("Marathon-Deployment-Id") != rollback {
		t.Fatalf("answer %s", r.body)
	}
	if ev := s.next(); ev.typ != "deployment_failed" || ev.data["id"] != dep || ev.data["reason"] != "The upgrade has been cancelled" {
		t.Fatalf("event %s %v", ev.typ, ev.data)
	}
	if ev := s.next(); ev.typ != "deployment_success" || ev.data["id"] != rollback {
		t.Fatalf("event %s %v", ev.typ, ev.data)
	}
	after := e.app("/dev/app1")
	if image(after) != image(before) {
		t.Errorf("image %s, want %s restored", image(after), image(before))
	}
	if after["version"] == before["version"] || after["version"] != body["version"] {
		t.Errorf("version %v, before %v, rollback %v", after["version"], before["version"], body["version"])
	}
	if intField(after, "tasksHealthy") != 2 || intField(after, "tasksUnhealthy") != 0 || intField(after, "tasksRunning") != 2 {
		t.Errorf("counts after rollback: %v/%v/%v", after["tasksRunning"], after["tasksHealthy"], after["tasksUnhealthy"])
	}
	if res := e.wait(dep); res.Success || res.Reason != cancelledReason {
		t.Errorf("original: %+v", res)
	}
}

// DeploymentsResource.cancel with force=true: 202, no rollback; the app
// keeps the new definition.
func TestDeleteDeploymentForce(t *testing.T) {
	e := newEnv(t, Options{UnhealthyImages: regexp.MustCompile(`:broken$`)})
	s := e.events("?event_type=deployment_failed&event_type=deployment_info")
	dep := e.must(200, e.putImage("/dev/app1", "x:broken", "")).json(t)["deploymentId"].(string)
	s.expectFor("deployment_info", dep)

	r := e.must(202, e.do("DELETE", "/v2/deployments/"+dep+"?force=true", ""))
	if len(r.body) != 0 {
		t.Errorf("202 body %q", r.body)
	}
	if ev := s.next(); ev.typ != "deployment_failed" || ev.data["id"] != dep {
		t.Fatalf("event %s %v (no rollback deployment may start)", ev.typ, ev.data)
	}
	if image(e.app("/dev/app1")) != "x:broken" {
		t.Error("force cancel rolled back")
	}
	if ids := e.emu.RunningDeployments(); len(ids) != 0 {
		t.Errorf("running %v", ids)
	}
	// deployments.raml: unknown id → 404 "DeploymentPlan <id> does not exist".
	r = e.must(404, e.do("DELETE", "/v2/deployments/"+dep, ""))
	if string(r.body) != `{"message":"DeploymentPlan `+dep+` does not exist"}` {
		t.Errorf("404 body %s", r.body)
	}
}

// AppsResource.delete defaults force to true: deleting an app cancels its
// running deployment; the app goes with a StopApplication step and
// app_terminated_event.
func TestDeleteAppCancelsItsDeployment(t *testing.T) {
	e := newEnv(t, Options{UnhealthyImages: regexp.MustCompile(`:broken$`)})
	s := e.events("?event_type=deployment_failed&event_type=deployment_info&event_type=app_terminated_event&event_type=deployment_success")
	dep := e.must(200, e.putImage("/dev/app1", "x:broken", "")).json(t)["deploymentId"].(string)
	s.expectFor("deployment_info", dep)
	del := e.must(200, e.do("DELETE", "/v2/apps/dev/app1", "")).json(t)["deploymentId"].(string)
	s.expectFor("deployment_failed", dep)
	info := s.expectFor("deployment_info", del)
	if a := info.data["currentStep"].(map[string]any)["actions"].([]any)[0].(map[string]any); a["action"] != "StopApplication" {
		t.Errorf("action %v", a)
	}
	if ev := s.expect("app_terminated_event"); ev.data["appId"] != "/dev/app1" {
		t.Errorf("terminated %v", ev.data)
	}
	s.expectFor("deployment_success", del)
	e.must(404, e.do("GET", "/v2/apps/dev/app1", ""))
}

// DeploymentPlan.apply: a new app gets a StartApplication step, then a
// ScaleApplication step; POST /v2/apps/{id}/restart is a
// RestartApplication of the same definition under a new version.
func TestPlanSteps(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.events("?event_type=deployment_info&event_type=deployment_success")
	dep := e.must(201, e.do("POST", "/v2/apps", `{"id":"/dev/new","cmd":"sleep 1","instances":2}`)).header.Get("Marathon-Deployment-Id")
	for _, want := range []string{"StartApplication", "ScaleApplication"} {
		ev := s.expectFor("deployment_info", dep)
		if got := ev.data["currentStep"].(map[string]any)["actions"].([]any)[0].(map[string]any)["action"]; got != want {
			t.Errorf("step action %v, want %s", got, want)
		}
		if n := len(ev.data["plan"].(map[string]any)["steps"].([]any)); n != 2 {
			t.Errorf("plan has %d steps", n)
		}
	}
	s.expectFor("deployment_success", dep)

	before := e.app("/dev/app2")["version"]
	r := e.must(200, e.do("POST", "/v2/apps/dev/app2/restart", ""))
	restart := r.json(t)["deploymentId"].(string)
	ev := s.expectFor("deployment_info", restart)
	if got := ev.data["currentStep"].(map[string]any)["actions"].([]any)[0].(map[string]any)["action"]; got != "RestartApplication" {
		t.Errorf("restart action %v", got)
	}
	s.expectFor("deployment_success", restart)
	if e.app("/dev/app2")["version"] == before {
		t.Error("restart kept the version")
	}
}

// GroupVersioningUtil: an update that changes nothing keeps the app's
// version; its plan has no steps and succeeds at once (and, affecting no
// app, conflicts with nothing).
func TestNoOpUpdate(t *testing.T) {
	e := newEnv(t, Options{})
	before := e.app("/dev/app1")["version"]
	r := e.must(200, e.do("PUT", "/v2/apps/dev/app1", `{"instances":2}`))
	if res := e.wait(r.json(t)["deploymentId"].(string)); !res.Success {
		t.Errorf("no-op deployment %+v", res)
	}
	if e.app("/dev/app1")["version"] != before {
		t.Error("version changed by a no-op update")
	}
}

// Scale-only changes bump lastScalingAt, not lastConfigChangeAt
// (VersionInfo.withScaleChange).
func TestScaleOnlyVersionInfo(t *testing.T) {
	e := newEnv(t, Options{})
	before := e.app("/dev/app1")["versionInfo"].(map[string]any)
	e.wait(e.must(200, e.do("PATCH", "/v2/apps/dev/app1", `{"instances":1}`)).json(t)["deploymentId"].(string))
	app := e.app("/dev/app1")
	vi := app["versionInfo"].(map[string]any)
	if vi["lastConfigChangeAt"] != before["lastConfigChangeAt"] || vi["lastScalingAt"] == before["lastScalingAt"] || vi["lastScalingAt"] != app["version"] {
		t.Errorf("versionInfo %v, before %v", vi, before)
	}
	if intField(app, "tasksRunning") != 1 {
		t.Errorf("running %v", app["tasksRunning"])
	}
}
