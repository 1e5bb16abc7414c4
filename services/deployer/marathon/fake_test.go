package marathon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// fakeMarathon answers like Marathon does for the endpoints the client uses
// (reference: /work/shared/reference/marathon-api.md): it checks the
// credentials, Accept of the event stream, the JSON of updates (a `version`
// with other fields is refused), app locks and force, and the error shapes.
type fakeMarathon struct {
	t      *testing.T
	prefix string
	// authorized checks a request's credentials; nil accepts any request
	// (a Marathon without authentication).
	authorized func(r *http.Request) bool
	basic      bool // answer 401 with Marathon's Basic challenge

	mu          sync.Mutex
	apps        map[string]map[string]json.RawMessage
	locks       map[string][]string // app id → deployment ids
	deployments []map[string]any
	faults      []int // statuses answered (and counted) before anything else
	requests    []string
	puts        []map[string]json.RawMessage
	nextID      int
}

func newFake(t *testing.T) *fakeMarathon {
	return &fakeMarathon{t: t, apps: map[string]map[string]json.RawMessage{}, locks: map[string][]string{}}
}

func (f *fakeMarathon) addApp(app string) {
	f.t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(app), &m); err != nil {
		f.t.Fatal(err)
	}
	var id string
	_ = json.Unmarshal(m["id"], &id)
	f.mu.Lock()
	f.apps[id] = m
	f.mu.Unlock()
}

func (f *fakeMarathon) failNext(statuses ...int) {
	f.mu.Lock()
	f.faults = append(f.faults, statuses...)
	f.mu.Unlock()
}

func (f *fakeMarathon) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeMarathon) lastPut() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) == 0 {
		return nil
	}
	return f.puts[len(f.puts)-1]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg})
}

func (f *fakeMarathon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	var fault int
	if len(f.faults) > 0 {
		fault, f.faults = f.faults[0], f.faults[1:]
	}
	f.mu.Unlock()

	path, ok := strings.CutPrefix(r.URL.EscapedPath(), f.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.authorized != nil && !f.authorized(r) {
		if f.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="Mesosphere"`)
		}
		message(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if fault != 0 {
		message(w, fault, "injected failure")
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "/ping":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "pong")
	case r.Method == http.MethodGet && path == "/v2/apps":
		f.mu.Lock()
		apps := []map[string]json.RawMessage{}
		for _, a := range f.apps {
			apps = append(apps, a)
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"apps": apps})
	case strings.HasPrefix(path, "/v2/apps/"):
		f.app(w, r, "/"+strings.TrimPrefix(r.URL.Path[len(f.prefix):], "/v2/apps/"))
	case r.Method == http.MethodGet && path == "/v2/deployments":
		f.mu.Lock()
		deps := append([]map[string]any{}, f.deployments...)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, deps)
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/v2/deployments/"):
		f.cancel(w, r, strings.TrimPrefix(path, "/v2/deployments/"))
	default:
		message(w, http.StatusNotFound, "not found: "+r.Method+" "+path)
	}
}

func (f *fakeMarathon) app(w http.ResponseWriter, r *http.Request, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	app, ok := f.apps[id]
	switch r.Method {
	case http.MethodGet:
		if !ok {
			message(w, http.StatusNotFound, fmt.Sprintf("App '%s' does not exist", id))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"app": app})
	case http.MethodPut:
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			message(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
			return
		}
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid JSON", "details": err.Error()})
			return
		}
		if _, hasVersion := body["version"]; hasVersion {
			for k := range body {
				if k != "version" && k != "id" {
					writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "The 'version' field may only be combined with the 'id' field."})
					return
				}
			}
		}
		if c, ok := body["container"]; ok {
			var ct struct {
				Docker *struct {
					Image string `json:"image"`
				} `json:"docker"`
			}
			if json.Unmarshal(c, &ct) != nil || ct.Docker == nil || ct.Docker.Image == "" {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Object is not valid",
					"details": []any{map[string]any{"path": "/container/docker/image", "errors": []string{"must not be empty"}}}})
				return
			}
		}
		if locks := f.locks[id]; len(locks) > 0 && r.URL.Query().Get("force") != "true" {
			deps := []map[string]string{}
			for _, d := range locks {
				deps = append(deps, map[string]string{"id": d})
			}
			writeJSON(w, http.StatusConflict, map[string]any{
				"message":     "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/" + locks[0] + "'.",
				"deployments": deps,
			})
			return
		}
		f.puts = append(f.puts, body)
		f.nextID++
		dep := fmt.Sprintf("dep-%d", f.nextID)
		version := time.Unix(int64(1700000000+f.nextID), 0).UTC().Format("2006-01-02T15:04:05.000Z")
		if !ok {
			app = map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprintf("%q", id))}
		}
		for k, v := range body {
			app[k] = v
		}
		app["version"] = json.RawMessage(fmt.Sprintf("%q", version))
		f.apps[id] = app
		f.locks[id] = []string{dep}
		if !ok {
			w.Header().Set("Marathon-Deployment-Id", dep)
			writeJSON(w, http.StatusCreated, app)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"version": version, "deploymentId": dep})
	default:
		message(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
	}
}

func (f *fakeMarathon) cancel(w http.ResponseWriter, r *http.Request, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for app, locks := range f.locks {
		for _, d := range locks {
			if d != id {
				continue
			}
			delete(f.locks, app)
			if r.URL.Query().Get("force") == "true" {
				w.WriteHeader(http.StatusAccepted)
				return
			}
			f.nextID++
			rb := fmt.Sprintf("dep-%d", f.nextID)
			f.locks[app] = []string{rb}
			writeJSON(w, http.StatusOK, map[string]string{"deploymentId": rb, "version": "2024-01-01T00:00:00.000Z"})
			return
		}
	}
	message(w, http.StatusNotFound, fmt.Sprintf("DeploymentPlan %s does not exist", id))
}

// start serves f and returns a client for it with fast retries.
func (f *fakeMarathon) start(t *testing.T, auth config.MarathonAuth, opts ...Option) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New("test", config.Marathon{URL: srv.URL + f.prefix, Auth: auth},
		append([]Option{WithRetry(5, time.Millisecond), WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes. It is for
// conditions that depend on wall-clock time passing (token lifetimes);
// the poll interval is not a synchronisation.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
