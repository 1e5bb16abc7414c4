package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds request bodies (a 5,000-app group is a few MB).
const maxBody = 64 << 20

// servicePrefix is where DC/OS Admin Router exposes Marathon.
const servicePrefix = "/service/marathon"

// Request is one recorded mutating API request.
type Request struct {
	Method string    `json:"method"`
	Path   string    `json:"path"` // Marathon path, without /service/marathon
	Query  string    `json:"query"`
	Body   string    `json:"body"`
	Status int       `json:"status"`
	Time   time.Time `json:"time"`
}

type requestLog struct {
	mu   sync.Mutex
	reqs []Request
}

func (l *requestLog) add(r Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

func (l *requestLog) all() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

func (l *requestLog) clear() {
	l.mu.Lock()
	l.reqs = nil
	l.mu.Unlock()
}

// statusWriter remembers the status for the request log; it passes
// Flush through for the event stream.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// mustJSON encodes like Marathon's Jackson writer: no HTML escaping of
// <, > and & (the lock message contains "<DEPLOYMENT_ID>").
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("emulator: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, mustJSON(v))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeAPIError(w http.ResponseWriter, err *apiError) { writeJSON(w, err.status, err.body) }

// call is one API request being served.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	path   string // Marathon path: prefix stripped, no trailing slash
	prefix string // "" or servicePrefix
	body   []byte
}

func (c *call) query(k string) string { return c.r.URL.Query().Get(k) }

// flag reads a boolean query parameter like Jersey's @DefaultValue.
func (c *call) flag(k string, def bool) bool {
	v, ok := c.r.URL.Query()[k]
	if !ok || len(v) == 0 {
		return def
	}
	return strings.EqualFold(v[0], "true")
}

func (c *call) clientIP() string {
	if host, _, err := net.SplitHostPort(c.r.RemoteAddr); err == nil {
		return host
	}
	return c.r.RemoteAddr
}

func (e *Emulator) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_emulator" || strings.HasPrefix(r.URL.Path, "/_emulator/") {
		e.serveAdmin(w, r)
		return
	}
	c := &call{r: r, path: r.URL.Path}
	if c.path == servicePrefix || strings.HasPrefix(c.path, servicePrefix+"/") {
		c.prefix = servicePrefix
		c.path = strings.TrimPrefix(c.path, servicePrefix)
	}
	if len(c.path) > 1 {
		c.path = strings.TrimRight(c.path, "/")
	}
	if c.path == "" {
		c.path = "/"
	}
	sw := &statusWriter{ResponseWriter: w}
	c.w = sw
	if mutating(r.Method) {
		body, err := io.ReadAll(http.MaxBytesReader(sw, r.Body, maxBody))
		if err != nil {
			writeAPIError(sw, errMessage(http.StatusRequestEntityTooLarge, "Request body too large"))
			e.record(c, body)
			return
		}
		c.body = body
	}
	defer func() {
		if mutating(r.Method) {
			e.record(c, c.body)
		}
	}()

	if d := e.faults.currentLatency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if status, ok := e.faults.takeFailure(); ok {
		writeAPIError(sw, errMessage(status, http.StatusText(status)+" (injected fault)"))
		return
	}
	if c.path == "/acs/api/v1/auth/login" && c.prefix == "" && e.auth != nil {
		e.serveLogin(c)
		return
	}
	if !e.authenticate(c) {
		return
	}
	e.route(c)
}

func (e *Emulator) record(c *call, body []byte) {
	status := http.StatusOK
	if sw, ok := c.w.(*statusWriter); ok && sw.status != 0 {
		status = sw.status
	}
	e.log.add(Request{Method: c.r.Method, Path: c.path, Query: c.r.URL.RawQuery, Body: string(body), Status: status, Time: e.opts.Now()})
}

// route dispatches like Marathon's Jersey resources: sub-resources of an
// app (restart, versions, tasks) are matched on the path's tail because
// app ids contain slashes.
func (e *Emulator) route(c *call) {
	p, m := c.path, c.r.Method
	switch {
	case p == "/ping":
		e.servePing(c)
	case p == "/v2/info" && m == http.MethodGet:
		e.serveInfo(c)
	case p == "/v2/leader" && m == http.MethodGet:
		writeJSON(c.w, http.StatusOK, map[string]string{"leader": e.opts.Leader})
	case p == "/v2/events" && m == http.MethodGet:
		e.serveEvents(c.w, c.r)
	case p == "/v2/apps":
		switch m {
		case http.MethodGet:
			e.listApps(c)
		case http.MethodPost:
			e.createApp(c)
		case http.MethodPut:
			e.updateApps(c, c.flag("partialUpdate", true), true)
		case http.MethodPatch:
			e.updateApps(c, true, false)
		default:
			methodNotAllowed(c)
		}
	case strings.HasPrefix(p, "/v2/apps/"):
		e.routeApp(c, strings.TrimPrefix(p, "/v2/apps/"))
	case p == "/v2/groups" || strings.HasPrefix(p, "/v2/groups/"):
		e.routeGroup(c, strings.TrimPrefix(strings.TrimPrefix(p, "/v2/groups"), "/"))
	case p == "/v2/deployments" && m == http.MethodGet:
		e.listDeployments(c)
	case strings.HasPrefix(p, "/v2/deployments/") && m == http.MethodDelete:
		e.deleteDeployment(c, strings.TrimPrefix(p, "/v2/deployments/"))
	case p == "/v2/tasks" && m == http.MethodGet:
		e.listTasks(c)
	default:
		// MarathonExceptionMapper answers Jersey's NotFoundException
		// with {"message":"URI not found"}.
		writeAPIError(c.w, errMessage(http.StatusNotFound, "URI not found"))
	}
}

func methodNotAllowed(c *call) {
	writeAPIError(c.w, errMessage(http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed"))
}

func (e *Emulator) routeApp(c *call, rest string) {
	m := c.r.Method
	switch {
	case m == http.MethodPost && strings.HasSuffix(rest, "/restart"):
		e.restartApp(c, strings.TrimSuffix(rest, "/restart"))
	case m == http.MethodGet && strings.HasSuffix(rest, "/versions"):
		e.appVersions(c, strings.TrimSuffix(rest, "/versions"))
	case m == http.MethodGet && strings.Contains(rest, "/versions/"):
		i := strings.LastIndex(rest, "/versions/")
		e.appVersion(c, rest[:i], rest[i+len("/versions/"):])
	case m == http.MethodGet && strings.HasSuffix(rest, "/tasks"):
		e.appTasks(c, strings.TrimSuffix(rest, "/tasks"))
	case m == http.MethodGet && (rest == "*" || strings.HasSuffix(rest, "/*")):
		e.appsInGroup(c, strings.TrimSuffix(rest, "*"))
	case m == http.MethodGet:
		e.showApp(c, rest)
	case m == http.MethodPut:
		e.updateApp(c, rest, c.flag("partialUpdate", true), true)
	case m == http.MethodPatch:
		e.updateApp(c, rest, true, false)
	case m == http.MethodDelete:
		e.deleteApp(c, rest)
	default:
		methodNotAllowed(c)
	}
}

// servePing answers "pong" (SystemResource.ping): text/plain unless the
// client only accepts JSON.
func (e *Emulator) servePing(c *call) {
	accept := c.r.Header.Get("Accept")
	if strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/") && !strings.Contains(accept, "*/*") {
		writeRaw(c.w, http.StatusOK, []byte(`"pong"`))
		return
	}
	c.w.Header().Set("Content-Type", "text/plain")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write([]byte("pong"))
}

// serveInfo is GET /v2/info, shaped like v2/examples/info.json.
func (e *Emulator) serveInfo(c *call) {
	host, portStr, err := net.SplitHostPort(e.opts.Leader)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		host, port = e.opts.Leader, 8080
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"name":        "marathon",
		"version":     MarathonVersion,
		"buildref":    "marathon-emulator",
		"elected":     true,
		"leader":      e.opts.Leader,
		"frameworkId": "4c0d0a31-emul-4a7e-9c57-000000000000-0000",
		"marathon_config": map[string]any{
			"checkpoint": true, "decline_offer_duration": 120000, "env_vars_prefix": "",
			"executor": "//cmd", "failover_timeout": 604800, "features": []string{},
			"framework_name": "marathon", "ha": true, "hostname": host,
			"leader_proxy_connection_timeout_ms": 5000, "leader_proxy_read_timeout_ms": 10000,
			"local_port_max": 20000, "local_port_min": 10000, "master": "zk://master.mesos:2181/mesos",
			"max_instances_per_offer": 5, "mesos_role": "*", "mesos_user": "root",
			"task_launch_timeout": 300000, "webui_url": "http://" + e.opts.Leader,
		},
		"zookeeper_config": map[string]any{
			"zk": "zk://master.mesos:2181/marathon", "zk_compression": true, "zk_max_versions": maxVersions,
			"zk_session_timeout": 10000, "zk_timeout": 10000,
		},
		"http_config": map[string]any{"http_port": port, "https_port": 8443},
	})
}
