package emulator

import (
	"strings"
	"testing"
)

// Two error shapes for 422 (MarathonExceptionMapper.exceptionStatusEntity):
// ValidationFailedException → {"message":"Object is not valid",…} with
// wix-accord messages (Validation.failureWrites, paths like
// "/container/docker/image"), and JsResultException from the RAML reader
// → {"message":"Invalid JSON",…} with play-json keys such as
// "error.min" (RestResource.entity; MarathonExceptionMapperTest renders
// {"path":"/id","errors":["error.expected.jsstring"]}).
func TestValidationErrors(t *testing.T) {
	e := newEnv(t, Options{})
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{
			// AppValidation.dockerDockerContainerValidator: docker.image is notEmpty.
			"empty image", "POST", "/v2/apps", `{"id":"/dev/x","container":{"type":"DOCKER","docker":{"image":""}}}`, 422,
			`{"message":"Object is not valid","details":[{"path":"/container/docker/image","errors":["must not be empty"]}]}`,
		},
		{
			// The same rule on a partial update of an existing app.
			"empty image on update", "PUT", "/v2/apps/dev/app1", `{"container":{"type":"DOCKER","docker":{"image":"  "}}}`, 422,
			`{"message":"Object is not valid","details":[{"path":"/container/docker/image","errors":["must not be empty"]}]}`,
		},
		{
			// DockerContainer.image has no "?" in appContainer.raml: required.
			"missing image", "POST", "/v2/apps", `{"id":"/dev/x","container":{"docker":{}}}`, 422,
			`{"message":"Invalid JSON","details":[{"path":"/container/docker/image","errors":["error.path.missing"]}]}`,
		},
		{
			// instances: minimum 0 (app.raml).
			"negative instances", "PUT", "/v2/apps/dev/app1", `{"instances":-1}`, 422,
			`{"message":"Invalid JSON","details":[{"path":"/instances","errors":["error.min"]}]}`,
		},
		{
			// UpgradeStrategy: both fields required, minimum 0.0, maximum 1.0.
			"upgrade strategy out of range", "PUT", "/v2/apps/dev/app1", `{"upgradeStrategy":{"minimumHealthCapacity":1.5,"maximumOverCapacity":-0.1}}`, 422,
			`{"message":"Invalid JSON","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["error.max"]},{"path":"/upgradeStrategy/maximumOverCapacity","errors":["error.min"]}]}`,
		},
		{
			"upgrade strategy incomplete", "PUT", "/v2/apps/dev/app1", `{"upgradeStrategy":{"minimumHealthCapacity":0.5}}`, 422,
			`{"message":"Invalid JSON","details":[{"path":"/upgradeStrategy/maximumOverCapacity","errors":["error.path.missing"]}]}`,
		},
		{
			// strings.PathId pattern in stringTypes.raml.
			"bad id", "POST", "/v2/apps", `{"id":"/dev/My_App","cmd":"x"}`, 422,
			`{"message":"Invalid JSON","details":[{"path":"/id","errors":["error.pattern"]}]}`,
		},
		{
			"id not a string", "POST", "/v2/apps", `{"id":123}`, 422,
			`{"message":"Invalid JSON","details":[{"path":"/id","errors":["error.expected.jsstring"]}]}`,
		},
		{
			// PathId.withoutReservedKeywords.
			"reserved id", "POST", "/v2/apps", `{"id":"/dev/restart","cmd":"x"}`, 422,
			`{"message":"Object is not valid","details":[{"path":"/id","errors":["must not end with any of the following reserved keywords: restart, tasks, versions, ., .."]}]}`,
		},
		{
			// MarathonExceptionMapperTest "Render ConstraintValidationException correctly".
			"nothing to run", "POST", "/v2/apps", `{"id":"/dev/x"}`, 422,
			`{"message":"Object is not valid","details":[{"path":"/","errors":["AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]}]}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.must(c.status, e.do(c.method, c.path, c.body))
			if string(r.body) != c.want {
				t.Errorf("body %s\nwant %s", r.body, c.want)
			}
		})
	}
	if n := len(e.emu.RunningDeployments()); n != 0 {
		t.Errorf("%d deployments started by invalid requests", n)
	}
}

// MarathonExceptionMapper: JsonParseException → 400 {"message":"Invalid
// JSON","details":"<parser message>"}; an empty body is a
// JsonMappingException → 400 "Please specify data in JSON format".
func TestUnparseableJSON(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(400, e.do("POST", "/v2/apps", `{"id":"/test"`))
	m := r.json(t)
	if m["message"] != "Invalid JSON" {
		t.Errorf("message %v", m["message"])
	}
	if d, ok := m["details"].(string); !ok || d == "" {
		t.Errorf("details %v", m["details"])
	}
	e.must(400, e.do("PUT", "/v2/apps/dev/app1", `{"labels":`))
	r = e.must(400, e.do("PUT", "/v2/apps/dev/app1", "  "))
	if !strings.Contains(string(r.body), "Please specify data in JSON format") {
		t.Errorf("empty body: %s", r.body)
	}
	// A JSON value that is not an object fails in the reader: 422.
	e.must(422, e.do("POST", "/v2/apps", `["x"]`))
}
