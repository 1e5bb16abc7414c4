package marathon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// App is the part of a Marathon app definition the deployer reads.
type App struct {
	ID        string            `json:"id"`
	Version   string            `json:"version"`
	Instances int               `json:"instances"`
	Labels    map[string]string `json:"labels"`
	// Container is kept verbatim: Marathon replaces `container` whole on
	// update, so it is sent back with only the image changed.
	Container   json.RawMessage `json:"container"`
	Deployments []struct {
		ID string `json:"id"`
	} `json:"deployments"`
	TasksRunning   int `json:"tasksRunning"`
	TasksHealthy   int `json:"tasksHealthy"`
	TasksUnhealthy int `json:"tasksUnhealthy"`
	TasksStaged    int `json:"tasksStaged"`
	// Tasks tell the agents the app runs on (the inventory's nodes).
	Tasks []struct {
		Host string `json:"host"`
	} `json:"tasks"`
	// HealthChecks are only counted: an app with health checks is healthy
	// when its tasks pass them, one without when they run.
	HealthChecks []json.RawMessage `json:"healthChecks"`
}

// Healthy reports whether the app runs all its instances and none is
// unhealthy; with health checks, every instance must pass them (Marathon
// counts a task healthy only once all its checks pass).
func (a App) Healthy() bool {
	if a.TasksRunning < a.Instances || a.TasksUnhealthy > 0 {
		return false
	}
	return len(a.HealthChecks) == 0 || a.TasksHealthy >= a.Instances
}

// Image is the app's container.docker.image, "" if it has none.
func (a App) Image() string {
	var c struct {
		Docker *struct {
			Image string `json:"image"`
		} `json:"docker"`
	}
	if len(a.Container) == 0 || json.Unmarshal(a.Container, &c) != nil || c.Docker == nil {
		return ""
	}
	return c.Docker.Image
}

// WithImage returns container with docker.image set to image. Every other
// field, including ones this package does not know, is kept as it was:
// Marathon replaces the whole container on update, so anything dropped here
// (port mappings, volumes, docker parameters) would be removed from the app.
func WithImage(container json.RawMessage, image string) (json.RawMessage, error) {
	if image == "" {
		return nil, errors.New("marathon: empty image")
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(container, &c); err != nil || c == nil {
		return nil, errors.New("marathon: the app has no container")
	}
	var docker map[string]json.RawMessage
	if err := json.Unmarshal(c["docker"], &docker); err != nil || docker == nil {
		return nil, errors.New("marathon: the app has no docker container")
	}
	img, err := marshal(image)
	if err != nil {
		return nil, err
	}
	docker["image"] = img
	if c["docker"], err = marshal(docker); err != nil {
		return nil, err
	}
	return marshal(c)
}

// marshal is json.Marshal without HTML escaping, so values copied from
// Marathon keep their bytes (json.Marshal would turn "<" into \u003c).
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// ListApps returns every app with its running deployments.
func (c *Client) ListApps(ctx context.Context) ([]App, error) {
	resp, err := c.do(ctx, call{
		method: http.MethodGet,
		url:    c.endpoint("/v2/apps", "/v2/apps", url.Values{"embed": {"apps.deployments", "apps.tasks"}}),
		path:   "/v2/apps",
		route:  "/v2/apps",
		safe:   true,
	})
	if err != nil {
		return nil, err
	}
	var out struct {
		Apps []App `json:"apps"`
	}
	if err := c.decode(resp, "GET", "/v2/apps", &out); err != nil {
		return nil, err
	}
	return out.Apps, nil
}

// GetApp returns the app with the given id ("/group/app"). An unknown app
// is an error matching ErrNotFound.
func (c *Client) GetApp(ctx context.Context, id string) (App, error) {
	p, raw, err := appPath(id)
	if err != nil {
		return App{}, c.argError("GET", id, err)
	}
	resp, err := c.do(ctx, call{method: http.MethodGet, url: c.endpoint(p, raw, nil), path: p, route: "/v2/apps/{id}", safe: true})
	if err != nil {
		return App{}, err
	}
	var out struct {
		App *App `json:"app"`
	}
	if err := c.decode(resp, "GET", p, &out); err != nil {
		return App{}, err
	}
	if out.App == nil {
		return App{}, fmt.Errorf("marathon %s: GET %s: the answer has no app", c.cluster, p)
	}
	return *out.App, nil
}

// readOnly are fields a GET returns that must never be PUT back; `version`
// in particular would make Marathon roll the app back to that version.
var readOnly = map[string]bool{
	"version": true, "versionInfo": true, "deployments": true, "tasks": true,
	"tasksStaged": true, "tasksRunning": true, "tasksHealthy": true, "tasksUnhealthy": true,
	"taskStats": true, "lastTaskFailure": true, "readinessCheckResults": true,
}

// UpdateApp changes the given top-level fields of app id and nothing else
// (Marathon replaces each field present whole). With force it overrides the
// deployments that lock the app, which Marathon then cancels. Without force a
// locked app gives an error for which LockedBy reports the deployments.
func (c *Client) UpdateApp(ctx context.Context, id string, fields map[string]json.RawMessage, force bool) (DeploymentRef, error) {
	p, raw, err := appPath(id)
	if err != nil {
		return DeploymentRef{}, c.argError("PUT", id, err)
	}
	if len(fields) == 0 {
		return DeploymentRef{}, c.argError("PUT", p, errors.New("no fields to update"))
	}
	names := make([]string, 0, len(fields))
	for k, v := range fields {
		if readOnly[k] {
			return DeploymentRef{}, c.argError("PUT", p, fmt.Errorf("field %q is read-only", k))
		}
		if !json.Valid(v) {
			return DeploymentRef{}, c.argError("PUT", p, fmt.Errorf("field %q is not valid JSON", k))
		}
		names = append(names, k)
	}
	body, err := marshal(fields)
	if err != nil {
		return DeploymentRef{}, c.argError("PUT", p, err)
	}
	sort.Strings(names)
	app := "/" + strings.Trim(id, "/")
	c.log.Debug("marathon update", "app", app, "fields", strings.Join(names, ","), "force", force)
	// The update as a whole, retries included; each HTTP attempt is a
	// client span under it ("PUT /v2/apps/{id}").
	ctx, span := tracer.Start(ctx, "marathon update app",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("marathon.cluster", c.cluster),
			attribute.String("marathon.app.id", app),
			attribute.StringSlice("marathon.app.fields", names),
			attribute.Bool("marathon.force", force),
		))
	defer span.End()
	ref, err := c.updateApp(ctx, p, raw, body, force)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "update failed")
	}
	span.SetAttributes(attribute.String("marathon.deployment.id", ref.DeploymentID))
	return ref, err
}

// RestartApp has Marathon replace every task of app id with the same
// definition under a new version (POST /v2/apps/{id}/restart), as a
// deployment of its own. With force it overrides the deployments that lock
// the app; without, a locked app gives an error for which LockedBy reports
// them.
func (c *Client) RestartApp(ctx context.Context, id string, force bool) (DeploymentRef, error) {
	p, raw, err := appPath(id)
	if err != nil {
		return DeploymentRef{}, c.argError("POST", id, err)
	}
	p, raw = p+"/restart", raw+"/restart"
	resp, err := c.do(ctx, call{
		method: http.MethodPost,
		url:    c.endpoint(p, raw, url.Values{"force": {strconv.FormatBool(force)}}),
		path:   p,
		route:  "/v2/apps/{id}/restart",
	})
	if err != nil {
		return DeploymentRef{}, err
	}
	var ref DeploymentRef
	if err := c.decode(resp, "POST", p, &ref); err != nil {
		return ref, err
	}
	if ref.DeploymentID == "" {
		return ref, fmt.Errorf("marathon %s: POST %s: accepted (%d), but the answer names no deployment", c.cluster, p, resp.status)
	}
	return ref, nil
}

// updateApp sends UpdateApp's PUT.
func (c *Client) updateApp(ctx context.Context, p, raw string, body []byte, force bool) (DeploymentRef, error) {
	resp, err := c.do(ctx, call{
		method: http.MethodPut,
		url:    c.endpoint(p, raw, url.Values{"force": {strconv.FormatBool(force)}}),
		path:   p,
		route:  "/v2/apps/{id}",
		body:   body,
	})
	if err != nil {
		return DeploymentRef{}, err
	}
	var ref DeploymentRef
	// 200 carries {version, deploymentId}; 201 (the app was created) the
	// app itself, with the deployment in a header.
	_ = json.Unmarshal(resp.body, &ref)
	if ref.DeploymentID == "" {
		ref.DeploymentID = resp.header.Get("Marathon-Deployment-Id")
	}
	if ref.DeploymentID == "" {
		// The change was accepted; only its deployment is unknown.
		return ref, fmt.Errorf("marathon %s: PUT %s: accepted (%d), but the answer names no deployment", c.cluster, p, resp.status)
	}
	return ref, nil
}

// tracer makes the spans of the Marathon writes.
var tracer = otel.Tracer("github.com/slipway-cd/slipway/services/deployer/marathon")

func (c *Client) decode(resp response, method, path string, v any) error {
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("marathon %s: %s %s: decoding the answer: %w", c.cluster, method, path, err)
	}
	return nil
}

func (c *Client) argError(method, what string, err error) error {
	return fmt.Errorf("marathon %s: %s %s: %w", c.cluster, method, what, err)
}

// appPath turns "/group/app" into the API path and its escaped form. Empty,
// "." and ".." segments are refused: they are not valid ids and would let a
// bad id address another endpoint.
func appPath(id string) (path, raw string, err error) {
	trimmed := strings.Trim(id, "/")
	if trimmed == "" {
		return "", "", fmt.Errorf("invalid app id %q", id)
	}
	segs := strings.Split(trimmed, "/")
	esc := make([]string, len(segs))
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", "", fmt.Errorf("invalid app id %q", id)
		}
		esc[i] = url.PathEscape(s)
	}
	return "/v2/apps/" + trimmed, "/v2/apps/" + strings.Join(esc, "/"), nil
}
