package marathon

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

const richContainer = `{
  "type": "DOCKER",
  "docker": {
    "image": "registry.dev:5000/apps/payments:1.2.3",
    "network": "BRIDGE",
    "forcePullImage": true,
    "privileged": false,
    "parameters": [{"key": "log-driver", "value": "journald"}, {"key": "label", "value": "a<b&c>d"}],
    "portMappings": [{"containerPort": 8080, "hostPort": 0, "servicePort": 10101, "protocol": "tcp", "labels": {"VIP_0": "/payments:8080"}}],
    "someFutureDockerField": {"nested": [1, 2.50, null, "x"]}
  },
  "volumes": [{"containerPath": "/data", "hostPath": "/mnt/data", "mode": "RW"}, {"containerPath": "data", "persistent": {"size": 512}, "mode": "RW"}],
  "portMappings": [{"containerPort": 9090, "name": "metrics"}],
  "unknownTopLevel": {"kept": true}
}`

func TestWithImageKeepsEveryOtherField(t *testing.T) {
	const image = "registry.tst:5000/apps/payments:1.3.0@sha256:0123456789abcdef"
	got, err := WithImage(json.RawMessage(richContainer), image)
	if err != nil {
		t.Fatal(err)
	}

	var before, after map[string]json.RawMessage
	mustUnmarshal(t, richContainer, &before)
	mustUnmarshal(t, string(got), &after)
	if !sameKeys(before, after) {
		t.Fatalf("top-level fields changed: %v → %v", keys(before), keys(after))
	}
	for k := range before {
		if k == "docker" {
			continue
		}
		assertSameJSON(t, k, before[k], after[k])
	}
	var db, da map[string]json.RawMessage
	mustUnmarshal(t, string(before["docker"]), &db)
	mustUnmarshal(t, string(after["docker"]), &da)
	if !sameKeys(db, da) {
		t.Fatalf("docker fields changed: %v → %v", keys(db), keys(da))
	}
	for k := range db {
		if k == "image" {
			continue
		}
		assertSameJSON(t, "docker."+k, db[k], da[k])
	}
	// Values are copied, not re-encoded: the HTML characters and the
	// number 2.50 keep their bytes.
	if !strings.Contains(string(got), `"a<b&c>d"`) || !strings.Contains(string(got), `2.50`) {
		t.Errorf("values were re-encoded: %s", got)
	}
	if img := (App{Container: got}).Image(); img != image {
		t.Errorf("image = %q, want %q", img, image)
	}
}

func TestWithImageRefusesContainersWithoutDocker(t *testing.T) {
	for _, c := range []string{``, `null`, `{}`, `{"type":"MESOS","volumes":[]}`, `{"type":"DOCKER","docker":null}`, `[1]`} {
		if _, err := WithImage(json.RawMessage(c), "img:1"); err == nil {
			t.Errorf("WithImage(%q) accepted a container without docker", c)
		}
	}
	if _, err := WithImage(json.RawMessage(richContainer), ""); err == nil {
		t.Error("WithImage accepted an empty image")
	}
	// Marathon's Mesos containerizer runs Docker images too.
	got, err := WithImage(json.RawMessage(`{"type":"MESOS","docker":{"image":"a:1","pullConfig":{"secret":"pull"}}}`), "a:2")
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "mesos container", got, json.RawMessage(`{"type":"MESOS","docker":{"image":"a:2","pullConfig":{"secret":"pull"}}}`))
}

func TestImage(t *testing.T) {
	for c, want := range map[string]string{
		richContainer:                            "registry.dev:5000/apps/payments:1.2.3",
		``:                                       "",
		`null`:                                   "",
		`{"type":"MESOS"}`:                       "",
		`{"type":"DOCKER","docker":{"image":1}}`: "",
	} {
		if got := (App{Container: json.RawMessage(c)}).Image(); got != want {
			t.Errorf("Image(%s) = %q, want %q", c, got, want)
		}
	}
}

func TestListAndGetApps(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/payments","version":"2024-05-01T10:00:00.000Z","instances":3,"labels":{"slipway.policy":"minor"},
		"container":` + richContainer + `,"deployments":[{"id":"d-1"}],"tasksRunning":3,"tasksHealthy":2,"tasksUnhealthy":1,"tasksStaged":0,
		"versionInfo":{"lastScalingAt":"2024-05-01T10:00:00.000Z","lastConfigChangeAt":"2024-05-01T10:00:00.000Z"}}`)
	f.addApp(`{"id":"/dev/web","instances":1,"cmd":"sleep 1000"}`)
	c, _ := f.start(t, config.MarathonAuth{None: true})

	apps, err := c.ListApps(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 {
		t.Fatalf("got %d apps", len(apps))
	}
	if log := f.requestLog(); log[0] != "GET /v2/apps?embed=apps.deployments&embed=apps.tasks" {
		t.Errorf("request = %q", log[0])
	}

	app, err := c.GetApp(ctxT(t), "/dev/payments")
	if err != nil {
		t.Fatal(err)
	}
	if app.ID != "/dev/payments" || app.Version != "2024-05-01T10:00:00.000Z" || app.Instances != 3 ||
		app.Labels["slipway.policy"] != "minor" || len(app.Deployments) != 1 || app.Deployments[0].ID != "d-1" ||
		app.TasksRunning != 3 || app.TasksHealthy != 2 || app.TasksUnhealthy != 1 || app.TasksStaged != 0 {
		t.Errorf("app = %+v", app)
	}
	assertSameJSON(t, "container", app.Container, json.RawMessage(richContainer))
	if app.Image() != "registry.dev:5000/apps/payments:1.2.3" {
		t.Errorf("image = %q", app.Image())
	}
	// Relative and absolute ids name the same app.
	if _, err := c.GetApp(ctxT(t), "dev/web"); err != nil {
		t.Error(err)
	}
}

func TestGetUnknownAppIsErrNotFound(t *testing.T) {
	f := newFake(t)
	c, _ := f.start(t, config.MarathonAuth{})
	_, err := c.GetApp(ctxT(t), "/dev/nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Message != "App '/dev/nope' does not exist" ||
		apiErr.Method != "GET" || apiErr.Path != "/v2/apps/dev/nope" || apiErr.Cluster != "test" {
		t.Errorf("err = %#v", apiErr)
	}
	if want := "marathon test: GET /v2/apps/dev/nope: 404 Not Found: App '/dev/nope' does not exist"; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	if n := len(f.requestLog()); n != 1 {
		t.Errorf("a 404 was retried: %d requests", n)
	}
}

func TestUpdateAppSendsOnlyTheGivenFields(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/payments","instances":2,"env":{"A":"1"},"container":` + richContainer + `}`)
	c, _ := f.start(t, config.MarathonAuth{})
	ctx := ctxT(t)

	app, err := c.GetApp(ctx, "/dev/payments")
	if err != nil {
		t.Fatal(err)
	}
	container, err := WithImage(app.Container, "registry.dev:5000/apps/payments:1.2.4")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := c.UpdateApp(ctx, app.ID, map[string]json.RawMessage{"container": container}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ref.DeploymentID != "dep-1" || ref.Version == "" {
		t.Errorf("ref = %+v", ref)
	}
	put := f.lastPut()
	if got := keys(put); !slices.Equal(got, []string{"container"}) {
		t.Fatalf("PUT body fields = %v, want only container", got)
	}
	assertSameJSON(t, "container", put["container"], container)
	if log := f.requestLog(); log[len(log)-1] != "PUT /v2/apps/dev/payments?force=false" {
		t.Errorf("request = %q", log[len(log)-1])
	}
}

func TestUpdateAppRefusesReadOnlyFields(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/payments","instances":2}`)
	c, _ := f.start(t, config.MarathonAuth{})
	for _, fields := range []map[string]json.RawMessage{
		{"version": json.RawMessage(`"2024-01-01T00:00:00.000Z"`), "instances": json.RawMessage(`3`)},
		{"tasksRunning": json.RawMessage(`1`)},
		{"instances": json.RawMessage(`{bad`)},
		{},
	} {
		if _, err := c.UpdateApp(ctxT(t), "/dev/payments", fields, false); err == nil {
			t.Errorf("UpdateApp(%v) was accepted", keys(fields))
		}
	}
	if n := len(f.requestLog()); n != 0 {
		t.Errorf("%d requests sent for refused updates", n)
	}
}

func TestUpdateLockedAppAndForce(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/payments","instances":2}`)
	f.locks["/dev/payments"] = []string{"5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43", "6ed4c0c5-0000-4a6f-a0cd-f57f59a34b43"}
	c, _ := f.start(t, config.MarathonAuth{})
	fields := map[string]json.RawMessage{"instances": json.RawMessage(`3`)}

	_, err := c.UpdateApp(ctxT(t), "/dev/payments", fields, false)
	ids, ok := LockedBy(err)
	if !ok || !slices.Equal(ids, []string{"5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43", "6ed4c0c5-0000-4a6f-a0cd-f57f59a34b43"}) {
		t.Fatalf("LockedBy(%v) = %v, %v", err, ids, ok)
	}
	if n := len(f.requestLog()); n != 1 {
		t.Errorf("a 409 was retried: %d requests", n)
	}
	if _, ok := LockedBy(errors.New("other")); ok {
		t.Error("LockedBy accepted an unrelated error")
	}
	if _, ok := LockedBy(&APIError{StatusCode: 409, Message: "An app with id [/x] already exists."}); ok {
		t.Error("LockedBy accepted a 409 without deployments")
	}

	ref, err := c.UpdateApp(ctxT(t), "/dev/payments", fields, true)
	if err != nil || ref.DeploymentID == "" {
		t.Fatalf("forced update: %+v, %v", ref, err)
	}
	if log := f.requestLog(); log[1] != "PUT /v2/apps/dev/payments?force=true" {
		t.Errorf("request = %q", log[1])
	}
}

func TestLockedByReadsTheMessageOfOlderMarathons(t *testing.T) {
	err := newAPIError("c", "PUT", "/v2/apps/x", 409, []byte(`{"message":"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43'."}`))
	if ids, ok := LockedBy(err); !ok || !slices.Equal(ids, []string{"5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"}) {
		t.Errorf("LockedBy = %v, %v", ids, ok)
	}
}

func TestUpdateAppThatIsCreated(t *testing.T) {
	f := newFake(t)
	c, _ := f.start(t, config.MarathonAuth{})
	ref, err := c.UpdateApp(ctxT(t), "/dev/new", map[string]json.RawMessage{"cmd": json.RawMessage(`"sleep 1"`)}, false)
	if err != nil || ref.DeploymentID != "dep-1" || ref.Version == "" {
		t.Fatalf("ref = %+v, err = %v", ref, err)
	}
}

func TestValidationErrorCarriesDetails(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/payments"}`)
	c, _ := f.start(t, config.MarathonAuth{})
	_, err := c.UpdateApp(ctxT(t), "/dev/payments", map[string]json.RawMessage{"container": json.RawMessage(`{"type":"DOCKER","docker":{"image":""}}`)}, false)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || !strings.Contains(string(apiErr.Details), "/container/docker/image") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "must not be empty") {
		t.Errorf("message lacks the details: %v", err)
	}
}

func TestAppIDsAreEscapedAndChecked(t *testing.T) {
	for id, want := range map[string]string{
		"/dev/app1":       "/v2/apps/dev/app1",
		"dev/app1/":       "/v2/apps/dev/app1",
		"/a b/c?d#e%":     "/v2/apps/a%20b/c%3Fd%23e%25",
		"/prod/x.y/z-1":   "/v2/apps/prod/x.y/z-1",
		"/deep/er/gr/app": "/v2/apps/deep/er/gr/app",
	} {
		_, raw, err := appPath(id)
		if err != nil || raw != want {
			t.Errorf("appPath(%q) = %q, %v; want %q", id, raw, err, want)
		}
	}
	for _, id := range []string{"", "/", "/dev//app", "/dev/../v2/deployments", "./x"} {
		if _, _, err := appPath(id); err == nil {
			t.Errorf("appPath(%q) accepted", id)
		}
	}
}

func TestPathPrefix(t *testing.T) {
	f := newFake(t)
	f.prefix = "/service/marathon"
	f.addApp(`{"id":"/dev/a b"}`)
	f.deployments = []map[string]any{{"id": "d1", "version": "v", "affectedApps": []string{"/dev/a b"}, "currentStep": 1, "totalSteps": 2,
		"steps": []any{}, "currentActions": []any{}}}
	c, srv := f.start(t, config.MarathonAuth{})
	withSlash, err := New("test", config.Marathon{URL: srv.URL + f.prefix + "/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Client{c, withSlash} {
		if err := cl.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.GetApp(ctxT(t), "/dev/a b"); err != nil {
			t.Fatal(err)
		}
		deps, err := cl.Deployments(ctxT(t))
		if err != nil || len(deps) != 1 || deps[0].AffectedApps[0] != "/dev/a b" || deps[0].TotalSteps != 2 {
			t.Fatalf("deployments = %+v, %v", deps, err)
		}
	}
	for _, r := range f.requestLog() {
		if !strings.HasPrefix(strings.SplitN(r, " ", 2)[1], "/service/marathon/") {
			t.Errorf("request outside the prefix: %s", r)
		}
	}
	if !slices.Contains(f.requestLog(), "GET /service/marathon/v2/apps/dev/a%20b") {
		t.Errorf("requests = %v", f.requestLog())
	}
}

func TestDeploymentsAndCancel(t *testing.T) {
	f := newFake(t)
	f.addApp(`{"id":"/dev/payments"}`)
	c, _ := f.start(t, config.MarathonAuth{})
	ctx := ctxT(t)

	ref, err := c.UpdateApp(ctx, "/dev/payments", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, false)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := c.CancelDeployment(ctx, ref.DeploymentID, false)
	if err != nil || rb.DeploymentID == "" || rb.DeploymentID == ref.DeploymentID {
		t.Fatalf("cancel = %+v, %v", rb, err)
	}
	forced, err := c.CancelDeployment(ctx, rb.DeploymentID, true)
	if err != nil || forced != (DeploymentRef{}) {
		t.Fatalf("forced cancel = %+v, %v", forced, err)
	}
	if _, err := c.CancelDeployment(ctx, rb.DeploymentID, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel of a finished deployment: %v", err)
	}
	log := f.requestLog()
	want := []string{
		"PUT /v2/apps/dev/payments?force=false",
		"DELETE /v2/deployments/dep-1?force=false",
		"DELETE /v2/deployments/dep-2?force=true",
		"DELETE /v2/deployments/dep-2?force=false",
	}
	if !slices.Equal(log, want) {
		t.Errorf("requests = %q, want %q", log, want)
	}
	if _, err := c.CancelDeployment(ctx, "", false); err == nil {
		t.Error("empty deployment id accepted")
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}

func assertSameJSON(t *testing.T, what string, a, b json.RawMessage) {
	t.Helper()
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil || !reflect.DeepEqual(va, vb) {
		t.Errorf("%s changed:\n%s\n%s", what, a, b)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sameKeys[V any](a, b map[string]V) bool { return slices.Equal(keys(a), keys(b)) }
