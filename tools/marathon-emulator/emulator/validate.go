package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// Marathon rejects bad input in two stages, with two error shapes
// (MarathonExceptionMapper.scala):
//
//  1. The RAML-generated JSON reader (types, required fields, minimum,
//     maximum, pattern) fails with a JsResultException, answered 422
//     {"message":"Invalid JSON","details":[{"path","errors":["error.min"]}]}
//     with play-json's message keys.
//  2. The validators on the parsed object (Validation.scala, wix accord)
//     fail with 422 {"message":"Object is not valid","details":[…]} and
//     human-readable messages such as "must not be empty".
//
// Unparseable JSON is 400 {"message":"Invalid JSON","details":"<parser
// message>"}.

// apiError is an HTTP error answer with a JSON body.
type apiError struct {
	status int
	body   any
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s", e.status, mustJSON(e.body))
}

// errorBody is raml.Error: message first, as Marathon writes it.
type errorBody struct {
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

type detail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

type lockedBody struct {
	Message     string              `json:"message"`
	Deployments []map[string]string `json:"deployments"`
}

func errMessage(status int, msg string) *apiError {
	return &apiError{status: status, body: errorBody{Message: msg}}
}

func errNotFound(msg string) *apiError { return errMessage(http.StatusNotFound, msg) }

// errAppLocked is AppLockedException as the exception mapper renders it;
// the message keeps Marathon's literal "<DEPLOYMENT_ID>" placeholder
// (Exception.scala), the ids are only in "deployments".
func errAppLocked(ids []string) *apiError {
	deps := make([]map[string]string, len(ids))
	for i, id := range ids {
		deps[i] = map[string]string{"id": id}
	}
	return &apiError{status: http.StatusConflict, body: lockedBody{
		Message:     "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
		Deployments: deps,
	}}
}

// violations collects errors by path, in first-seen order.
type violations struct {
	order []string
	m     map[string][]string
}

func (v *violations) add(path, msg string) {
	if v.m == nil {
		v.m = map[string][]string{}
	}
	if _, ok := v.m[path]; !ok {
		v.order = append(v.order, path)
	}
	for _, e := range v.m[path] {
		if e == msg {
			return
		}
	}
	v.m[path] = append(v.m[path], msg)
}

func (v *violations) empty() bool { return len(v.order) == 0 }

func (v *violations) details() []detail {
	out := make([]detail, 0, len(v.order))
	for _, p := range v.order {
		out = append(out, detail{p, v.m[p]})
	}
	return out
}

func (v *violations) invalidJSON() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, body: errorBody{"Invalid JSON", v.details()}}
}

func (v *violations) notValid() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, body: errorBody{"Object is not valid", v.details()}}
}

// decodeBody parses a request body the way Jackson does before any
// reader runs: empty and unparseable bodies are 400s.
func decodeBody(body []byte) (any, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &apiError{status: http.StatusBadRequest, body: errorBody{"Please specify data in JSON format", "No content to map due to end-of-input"}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("Unexpected character after the end of the JSON value")
		}
	}
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, body: errorBody{"Invalid JSON", err.Error()}}
	}
	return v, nil
}

// decodeObject is decodeBody for endpoints whose reader wants an object.
func decodeObject(body []byte) (map[string]any, *apiError) {
	v, aerr := decodeBody(body)
	if aerr != nil {
		return nil, aerr
	}
	o, ok := v.(map[string]any)
	if !ok {
		var vs violations
		vs.add("", "error.expected.jsobject")
		return nil, vs.invalidJSON()
	}
	return o, nil
}

// present treats JSON null like an absent field, as play-json's Option
// readers do.
func present(o map[string]any, k string) (any, bool) {
	v, ok := o[k]
	return v, ok && v != nil
}

func asNumber(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func checkString(o map[string]any, p, k string, v *violations) {
	if x, ok := present(o, k); ok {
		if _, ok := x.(string); !ok {
			v.add(p+"/"+k, "error.expected.jsstring")
		}
	}
}

func checkBool(o map[string]any, p, k string, v *violations) {
	if x, ok := present(o, k); ok {
		if _, ok := x.(bool); !ok {
			v.add(p+"/"+k, "error.expected.jsboolean")
		}
	}
}

// checkNumber checks a number field against the RAML minimum/maximum;
// integral demands an integer (play-json's "error.expected.int").
func checkNumber(o map[string]any, p, k string, integral bool, lo, hi float64, v *violations) {
	x, ok := present(o, k)
	if !ok {
		return
	}
	f, ok := asNumber(x)
	if !ok {
		v.add(p+"/"+k, "error.expected.jsnumber")
		return
	}
	if integral && (f != math.Trunc(f) || strings.ContainsAny(string(x.(json.Number)), ".eE")) {
		v.add(p+"/"+k, "error.expected.int")
		return
	}
	if f < lo {
		v.add(p+"/"+k, "error.min")
	}
	if f > hi {
		v.add(p+"/"+k, "error.max")
	}
}

func checkStringArray(o map[string]any, p, k string, v *violations) {
	x, ok := present(o, k)
	if !ok {
		return
	}
	arr, ok := x.([]any)
	if !ok {
		v.add(p+"/"+k, "error.expected.jsarray")
		return
	}
	for i, e := range arr {
		if _, ok := e.(string); !ok {
			v.add(fmt.Sprintf("%s/%s(%d)", p, k, i), "error.expected.jsstring")
		}
	}
}

func checkObjectArray(o map[string]any, p, k string, v *violations, each func(map[string]any, string)) {
	x, ok := present(o, k)
	if !ok {
		return
	}
	arr, ok := x.([]any)
	if !ok {
		v.add(p+"/"+k, "error.expected.jsarray")
		return
	}
	for i, e := range arr {
		ep := fmt.Sprintf("%s/%s(%d)", p, k, i)
		m, ok := e.(map[string]any)
		if !ok {
			v.add(ep, "error.expected.jsobject")
			continue
		}
		if each != nil {
			each(m, ep)
		}
	}
}

func checkObject(o map[string]any, p, k string, v *violations) (map[string]any, bool) {
	x, ok := present(o, k)
	if !ok {
		return nil, false
	}
	m, ok := x.(map[string]any)
	if !ok {
		v.add(p+"/"+k, "error.expected.jsobject")
		return nil, false
	}
	return m, true
}

func checkEnum(o map[string]any, p, k string, allowed []string, v *violations) {
	x, ok := present(o, k)
	if !ok {
		return
	}
	s, ok := x.(string)
	if !ok {
		v.add(p+"/"+k, "error.expected.jsstring")
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.add(p+"/"+k, "error.unknown.enum.literal")
}

const big = math.MaxFloat64

// checkAppJSON is the JSON-reader stage for one app (raml.App, or
// raml.AppUpdate when update is set: every field optional). p is the
// JSON path prefix of the app inside the body ("" at top level).
func checkAppJSON(o map[string]any, p string, update bool, v *violations) {
	if x, ok := present(o, "id"); !ok {
		if !update {
			v.add(p+"/id", "error.path.missing")
		}
	} else if s, ok := x.(string); !ok {
		v.add(p+"/id", "error.expected.jsstring")
	} else if s == "" {
		v.add(p+"/id", "error.minLength")
	} else if !ramlPathID.MatchString(s) {
		v.add(p+"/id", "error.pattern")
	}
	for _, k := range []string{"cmd", "user", "executor", "role", "version"} {
		checkString(o, p, k, v)
	}
	for _, k := range []string{"args", "acceptedResourceRoles", "dependencies", "uris"} {
		checkStringArray(o, p, k, v)
	}
	checkNumber(o, p, "instances", true, 0, big, v)
	checkNumber(o, p, "gpus", true, 0, big, v)
	checkNumber(o, p, "backoffSeconds", true, 0, big, v)
	checkNumber(o, p, "maxLaunchDelaySeconds", true, 0, big, v)
	checkNumber(o, p, "taskKillGracePeriodSeconds", true, 0, big, v)
	checkNumber(o, p, "cpus", false, 0.001, big, v)
	checkNumber(o, p, "mem", false, 0, big, v)
	checkNumber(o, p, "disk", false, 0, big, v)
	checkNumber(o, p, "backoffFactor", false, 1, big, v)
	checkBool(o, p, "requirePorts", v)
	checkBool(o, p, "tty", v)
	checkEnum(o, p, "killSelection", []string{"YOUNGEST_FIRST", "OLDEST_FIRST"}, v)
	if env, ok := checkObject(o, p, "env", v); ok {
		for k, val := range env {
			switch x := val.(type) {
			case string:
			case map[string]any:
				if s, ok := x["secret"].(string); !ok || s == "" {
					v.add(p+"/env/"+k+"/secret", "error.path.missing")
				}
			default:
				v.add(p+"/env/"+k, "error.expected.jsstring")
			}
		}
	}
	if labels, ok := checkObject(o, p, "labels", v); ok {
		for k, val := range labels {
			if _, ok := val.(string); !ok {
				v.add(p+"/labels/"+k, "error.expected.jsstring")
			}
		}
	}
	if c, ok := checkObject(o, p, "container", v); ok {
		checkContainerJSON(c, p+"/container", v)
	}
	checkObjectArray(o, p, "healthChecks", v, func(h map[string]any, hp string) {
		checkEnum(h, hp, "protocol", []string{"HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"}, v)
		checkString(h, hp, "path", v)
		for _, k := range []string{"gracePeriodSeconds", "intervalSeconds", "maxConsecutiveFailures", "timeoutSeconds", "delaySeconds"} {
			checkNumber(h, hp, k, true, 0, big, v)
		}
		checkNumber(h, hp, "portIndex", true, 0, 65535, v)
		checkNumber(h, hp, "port", true, 0, 65535, v)
		checkBool(h, hp, "ignoreHttp1xx", v)
	})
	if us, ok := checkObject(o, p, "upgradeStrategy", v); ok {
		// Both fields are required in RAML's UpgradeStrategy (no "?").
		for _, k := range []string{"minimumHealthCapacity", "maximumOverCapacity"} {
			if _, ok := present(us, k); !ok {
				v.add(p+"/upgradeStrategy/"+k, "error.path.missing")
			}
			checkNumber(us, p+"/upgradeStrategy", k, false, 0, 1, v)
		}
	}
	checkObjectArray(o, p, "portDefinitions", v, func(pd map[string]any, pp string) {
		checkNumber(pd, pp, "port", true, 0, 65535, v)
		checkString(pd, pp, "name", v)
	})
	checkObjectArray(o, p, "networks", v, func(n map[string]any, np string) {
		checkEnum(n, np, "mode", []string{"host", "container", "container/bridge"}, v)
	})
	checkObjectArray(o, p, "fetch", v, func(f map[string]any, fp string) {
		if _, ok := present(f, "uri"); !ok {
			v.add(fp+"/uri", "error.path.missing")
		}
		checkString(f, fp, "uri", v)
	})
	checkObjectArray(o, p, "readinessChecks", v, nil)
	if x, ok := present(o, "constraints"); ok {
		if _, ok := x.([]any); !ok {
			v.add(p+"/constraints", "error.expected.jsarray")
		}
	}
}

func checkContainerJSON(c map[string]any, p string, v *violations) {
	checkEnum(c, p, "type", []string{"DOCKER", "MESOS"}, v)
	if d, ok := checkObject(c, p, "docker", v); ok {
		if _, ok := present(d, "image"); !ok {
			v.add(p+"/docker/image", "error.path.missing")
		}
		checkString(d, p+"/docker", "image", v)
		checkBool(d, p+"/docker", "forcePullImage", v)
		checkBool(d, p+"/docker", "privileged", v)
		checkEnum(d, p+"/docker", "network", []string{"BRIDGE", "HOST", "USER", "NONE"}, v)
		checkObjectArray(d, p+"/docker", "parameters", v, func(kv map[string]any, kp string) {
			for _, k := range []string{"key", "value"} {
				if _, ok := present(kv, k); !ok {
					v.add(kp+"/"+k, "error.path.missing")
				}
				checkString(kv, kp, k, v)
			}
		})
	}
	checkObjectArray(c, p, "volumes", v, nil)
	checkObjectArray(c, p, "portMappings", v, func(pm map[string]any, pp string) {
		for _, k := range []string{"containerPort", "hostPort", "servicePort"} {
			checkNumber(pm, pp, k, true, 0, 65535, v)
		}
	})
}

// validateApp is the object-validation stage (AppValidation.scala) for a
// normalised app; p is the path prefix ("" for a single app, where the
// root is "/", or "/groups(0)/apps(1)" inside a group). base is the group
// the app must be a direct child of ("" when not nested).
func validateApp(def map[string]any, rawID, p, base string, v *violations) {
	root := p
	if root == "" {
		root = "/"
	}
	for _, msg := range pathViolations(rawID, base) {
		v.add(p+"/id", msg)
	}
	if def["id"] == "/" {
		v.add(root, "must not be root")
	}
	_, hasCmd := def["cmd"]
	args, _ := def["args"].([]any)
	hasArgs := len(args) > 0
	_, hasContainer := def["container"]
	if !hasCmd && !hasArgs && !hasContainer {
		v.add(root, "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}
	if hasCmd && hasArgs {
		v.add(root, "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}
	if c, ok := def["container"].(map[string]any); ok {
		d, hasDocker := c["docker"].(map[string]any)
		switch {
		case c["type"] == "DOCKER" && !hasDocker:
			v.add(p+"/container/docker", "not defined")
		case hasDocker:
			if img, _ := d["image"].(string); strings.TrimSpace(img) == "" {
				v.add(p+"/container/docker/image", "must not be empty")
			}
		}
	}
	if env, ok := def["env"].(map[string]any); ok {
		i := 0
		for k := range env {
			if k == "" {
				v.add(fmt.Sprintf("%s/env/keys(%d)", p, i), "must not be empty")
			}
			i++
		}
	}
}
