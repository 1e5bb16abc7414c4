package emulator

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"time"
)

// appFields are raml.App's properties (types/app.raml); a stored app keeps
// only these, so unknown fields in a request vanish as in Marathon.
var appFields = map[string]bool{
	"id": true, "acceptedResourceRoles": true, "args": true, "backoffFactor": true, "backoffSeconds": true,
	"cmd": true, "constraints": true, "container": true, "cpus": true, "dependencies": true, "disk": true,
	"env": true, "executor": true, "executorResources": true, "fetch": true, "healthChecks": true, "check": true,
	"instances": true, "labels": true, "maxLaunchDelaySeconds": true, "mem": true, "gpus": true,
	"ipAddress": true, "networks": true, "ports": true, "portDefinitions": true, "readinessChecks": true,
	"residency": true, "resourceLimits": true, "requirePorts": true, "secrets": true,
	"taskKillGracePeriodSeconds": true, "upgradeStrategy": true, "uris": true, "user": true,
	"killSelection": true, "unreachableStrategy": true, "tty": true, "role": true,
	// version and versionInfo are read, then handled apart.
}

// num makes a JSON number literal for defaults.
func num(s string) json.Number { return json.Number(s) }

func intNum(i int) json.Number { return json.Number(strconv.Itoa(i)) }

// setDefault sets k when absent or null.
func setDefault(m map[string]any, k string, v any) {
	if x, ok := m[k]; !ok || x == nil {
		m[k] = v
	}
}

// cloneMap copies one level; normalisation rebuilds every nested map it
// touches, so stored definitions are never mutated in place.
func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+8)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// normalizeApp turns a parsed, JSON-valid app into its stored canonical
// form with id: Marathon's AppNormalization (deprecated fields migrated,
// defaults from the RAML filled in) in the parts clients see.
func normalizeApp(in map[string]any, id string) map[string]any {
	out := make(map[string]any, 40)
	for k, v := range in {
		if appFields[k] && v != nil {
			out[k] = v
		}
	}
	out["id"] = id

	// Deprecated fields (AppNormalization.forDeprecated): uris → fetch,
	// ports → portDefinitions, docker.network → networks,
	// docker.portMappings → container.portMappings.
	if uris, ok := out["uris"].([]any); ok {
		if _, has := out["fetch"]; !has {
			fetch := make([]any, 0, len(uris))
			for _, u := range uris {
				fetch = append(fetch, map[string]any{"uri": u})
			}
			out["fetch"] = fetch
		}
	}
	delete(out, "uris")
	if ports, ok := out["ports"].([]any); ok {
		if _, has := out["portDefinitions"]; !has {
			pds := make([]any, 0, len(ports))
			for _, p := range ports {
				pds = append(pds, map[string]any{"port": p})
			}
			out["portDefinitions"] = pds
		}
	}
	delete(out, "ports")
	delete(out, "ipAddress")
	if args, ok := out["args"].([]any); ok && len(args) == 0 {
		delete(out, "args")
	}

	var container map[string]any
	if c, ok := out["container"].(map[string]any); ok {
		container = cloneMap(c)
		setDefault(container, "type", "DOCKER")
		setDefault(container, "volumes", []any{})
		if d, ok := container["docker"].(map[string]any); ok {
			d = cloneMap(d)
			if netType, ok := d["network"].(string); ok {
				if _, has := out["networks"]; !has {
					switch netType {
					case "BRIDGE":
						out["networks"] = []any{map[string]any{"mode": "container/bridge"}}
					case "USER":
						out["networks"] = []any{map[string]any{"mode": "container"}}
					default:
						out["networks"] = []any{map[string]any{"mode": "host"}}
					}
				}
				delete(d, "network")
			}
			if pm, ok := d["portMappings"]; ok {
				if _, has := container["portMappings"]; !has && pm != nil {
					container["portMappings"] = pm
				}
				delete(d, "portMappings")
			}
			setDefault(d, "forcePullImage", false)
			setDefault(d, "privileged", false)
			setDefault(d, "parameters", []any{})
			container["docker"] = d
		}
		out["container"] = container
	}

	setDefault(out, "networks", []any{map[string]any{"mode": "host"}})
	hostNetworking := true
	if nets, ok := out["networks"].([]any); ok {
		if len(nets) == 0 {
			out["networks"] = []any{map[string]any{"mode": "host"}}
		}
		for _, n := range nets {
			if m, ok := n.(map[string]any); ok && m["mode"] != "host" {
				hostNetworking = false
			}
		}
	}
	// appWriter: portDefinitions only with host networking, port mappings
	// only without it.
	if hostNetworking {
		setDefault(out, "portDefinitions", []any{map[string]any{"port": num("0"), "name": "default"}})
		if container != nil {
			delete(container, "portMappings")
		}
	} else {
		delete(out, "portDefinitions")
		if container != nil {
			if pms, ok := container["portMappings"].([]any); ok {
				norm := make([]any, 0, len(pms))
				for _, pm := range pms {
					if m, ok := pm.(map[string]any); ok {
						m = cloneMap(m)
						setDefault(m, "containerPort", num("0"))
						setDefault(m, "protocol", "tcp")
						setDefault(m, "servicePort", num("0"))
						setDefault(m, "labels", map[string]any{})
						norm = append(norm, m)
					}
				}
				container["portMappings"] = norm
			}
		}
	}
	if pds, ok := out["portDefinitions"].([]any); ok {
		norm := make([]any, 0, len(pds))
		for _, pd := range pds {
			if m, ok := pd.(map[string]any); ok {
				m = cloneMap(m)
				setDefault(m, "port", num("0"))
				setDefault(m, "protocol", "tcp")
				setDefault(m, "labels", map[string]any{})
				norm = append(norm, m)
			}
		}
		out["portDefinitions"] = norm
	}

	if hcs, ok := out["healthChecks"].([]any); ok {
		norm := make([]any, 0, len(hcs))
		for _, hc := range hcs {
			if m, ok := hc.(map[string]any); ok {
				norm = append(norm, normalizeHealthCheck(m))
			}
		}
		out["healthChecks"] = norm
	}
	if fetch, ok := out["fetch"].([]any); ok {
		norm := make([]any, 0, len(fetch))
		for _, f := range fetch {
			if m, ok := f.(map[string]any); ok {
				m = cloneMap(m)
				setDefault(m, "extract", true)
				setDefault(m, "executable", false)
				setDefault(m, "cache", false)
				norm = append(norm, m)
			}
		}
		out["fetch"] = norm
	}

	setDefault(out, "backoffFactor", num("1.15"))
	setDefault(out, "backoffSeconds", num("1"))
	setDefault(out, "constraints", []any{})
	setDefault(out, "cpus", num("1"))
	setDefault(out, "dependencies", []any{})
	setDefault(out, "disk", num("0"))
	setDefault(out, "env", map[string]any{})
	setDefault(out, "executor", "")
	setDefault(out, "fetch", []any{})
	setDefault(out, "gpus", num("0"))
	setDefault(out, "healthChecks", []any{})
	setDefault(out, "instances", num("1"))
	setDefault(out, "labels", map[string]any{})
	setDefault(out, "maxLaunchDelaySeconds", num("300"))
	setDefault(out, "mem", num("128"))
	setDefault(out, "readinessChecks", []any{})
	setDefault(out, "requirePorts", false)
	setDefault(out, "secrets", map[string]any{})
	setDefault(out, "upgradeStrategy", map[string]any{"maximumOverCapacity": num("1"), "minimumHealthCapacity": num("1")})
	setDefault(out, "unreachableStrategy", map[string]any{"inactiveAfterSeconds": num("0"), "expungeAfterSeconds": num("0")})
	setDefault(out, "killSelection", "YOUNGEST_FIRST")
	setDefault(out, "role", "*")
	return out
}

// normalizeHealthCheck fills AppHealthCheck's RAML defaults.
func normalizeHealthCheck(in map[string]any) map[string]any {
	m := cloneMap(in)
	setDefault(m, "protocol", "HTTP")
	proto, _ := m["protocol"].(string)
	switch proto {
	case "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS":
		setDefault(m, "path", "/")
	}
	if proto == "HTTP" || proto == "HTTPS" {
		setDefault(m, "ignoreHttp1xx", false)
	}
	if proto != "COMMAND" {
		if _, hasPort := m["port"]; !hasPort {
			setDefault(m, "portIndex", num("0"))
		}
	}
	setDefault(m, "gracePeriodSeconds", num("300"))
	setDefault(m, "intervalSeconds", num("60"))
	setDefault(m, "timeoutSeconds", num("20"))
	setDefault(m, "maxConsecutiveFailures", num("3"))
	setDefault(m, "delaySeconds", num("15"))
	return m
}

// mergeUpdate applies a partial update (AppConversion.appUpdateRamlReader):
// every field present replaces the old value whole, absent ones stay.
func mergeUpdate(current, update map[string]any) map[string]any {
	out := cloneMap(current)
	for k, v := range update {
		if !appFields[k] || k == "id" || v == nil {
			continue
		}
		out[k] = v
	}
	// A docker.network in the update must win over the stored networks,
	// as it does when both come from the same request.
	if c, ok := update["container"].(map[string]any); ok {
		if d, ok := c["docker"].(map[string]any); ok && d["network"] != nil {
			if _, has := update["networks"]; !has {
				delete(out, "networks")
			}
		}
	}
	if _, has := update["networks"]; has {
		if _, pd := update["portDefinitions"]; !pd {
			delete(out, "portDefinitions")
		}
	}
	return out
}

// encodedDef is a definition encoded once: key compares definitions,
// scaleKey compares them without instances (equal scale keys and
// different keys make a scale-only change, isOnlyScaleChange), body is
// the raml.App object without version fields.
type encodedDef struct {
	key, scaleKey string
	body          []byte
}

// encodeDef writes def with "id" first and the other keys sorted, the
// way Marathon's writers put id first; nested values use encoding/json.
func encodeDef(def map[string]any) encodedDef {
	keys := make([]string, 0, len(def))
	for k := range def {
		if k != "id" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := def["id"]; ok {
		keys = append([]string{"id"}, keys...)
	}
	full := make([]byte, 0, 1024)
	scale := make([]byte, 0, 1024)
	full = append(full, '{')
	scale = append(scale, '{')
	for i, k := range keys {
		start := len(full)
		if i > 0 {
			full = append(full, ',')
		}
		full = appendString(full, k)
		full = append(full, ':')
		full = appendJSON(full, def[k])
		if k != "instances" {
			field := full[start:]
			if len(scale) > 1 && field[0] != ',' {
				scale = append(scale, ',')
			} else if len(scale) == 1 && field[0] == ',' {
				field = field[1:]
			}
			scale = append(scale, field...)
		}
	}
	full = append(full, '}')
	scale = append(scale, '}')
	return encodedDef{key: string(full), scaleKey: string(scale), body: full}
}

func instancesOf(def map[string]any) int {
	f, _ := asNumber(def["instances"])
	return int(f)
}

func imageOf(def map[string]any) string {
	c, _ := def["container"].(map[string]any)
	d, _ := c["docker"].(map[string]any)
	img, _ := d["image"].(string)
	return img
}

func hasHealthChecks(def map[string]any) bool {
	hcs, _ := def["healthChecks"].([]any)
	return len(hcs) > 0
}

func minimumHealthCapacity(def map[string]any) float64 {
	us, _ := def["upgradeStrategy"].(map[string]any)
	f, ok := asNumber(us["minimumHealthCapacity"])
	if !ok {
		return 1
	}
	return f
}

// portCount is how many host ports a task of def gets.
func portCount(def map[string]any) int {
	if pds, ok := def["portDefinitions"].([]any); ok {
		return len(pds)
	}
	if c, ok := def["container"].(map[string]any); ok {
		if pms, ok := c["portMappings"].([]any); ok {
			return len(pms)
		}
	}
	return 0
}

type kv struct {
	k string
	v any
}

// writeObject writes an encoded object (encodeDef's body) followed by
// extra fields.
func writeObject(buf *bytes.Buffer, body []byte, extra ...kv) {
	buf.Write(body[:len(body)-1])
	comma := len(body) > 2
	for _, e := range extra {
		if comma {
			buf.WriteByte(',')
		}
		comma = true
		buf.Write(mustJSON(e.k))
		buf.WriteByte(':')
		buf.Write(mustJSON(e.v))
	}
	buf.WriteByte('}')
}

// renderDef is an app as Marathon writes raml.App: the definition plus
// version and versionInfo.
func renderDef(enc encodedDef, version, lastScaling, lastConfig time.Time) []byte {
	out := make([]byte, 0, len(enc.body)+120)
	out = append(out, enc.body[:len(enc.body)-1]...)
	out = append(out, `,"version":"`...)
	out = append(out, fmtTime(version)...)
	out = append(out, `","versionInfo":{"lastScalingAt":"`...)
	out = append(out, fmtTime(lastScaling)...)
	out = append(out, `","lastConfigChangeAt":"`...)
	out = append(out, fmtTime(lastConfig)...)
	out = append(out, `"}}`...)
	return out
}

// ceilFraction is ceil(f*n) for small non-negative n.
func ceilFraction(f float64, n int) int { return int(math.Ceil(f*float64(n) - 1e-9)) }
