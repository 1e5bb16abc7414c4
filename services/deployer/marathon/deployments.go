package marathon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// DeploymentRef is what Marathon answers to a change: the deployment that
// carries it out and the app version it produces.
type DeploymentRef struct {
	DeploymentID string `json:"deploymentId"`
	Version      string `json:"version"`
}

// Deployment is a running deployment as GET /v2/deployments lists it.
type Deployment struct {
	ID             string          `json:"id"`
	Version        string          `json:"version"`
	AffectedApps   []string        `json:"affectedApps"`
	CurrentStep    int             `json:"currentStep"`
	TotalSteps     int             `json:"totalSteps"`
	Steps          json.RawMessage `json:"steps"`
	CurrentActions json.RawMessage `json:"currentActions"`
}

// Deployments returns the running deployments. Finished ones are not
// listed: a deployment that disappeared has succeeded, failed or been
// cancelled, which only the event stream tells apart.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	resp, err := c.do(ctx, call{
		method: http.MethodGet,
		url:    c.endpoint("/v2/deployments", "/v2/deployments", nil),
		path:   "/v2/deployments",
		route:  "/v2/deployments",
		safe:   true,
	})
	if err != nil {
		return nil, err
	}
	var out []Deployment
	if err := c.decode(resp, "GET", "/v2/deployments", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CancelDeployment stops deployment id. Without force Marathon rolls the
// affected apps back in a new deployment, returned here; the cancelled one
// ends with deployment_failed and the rollback with deployment_success.
// With force nothing is rolled back and the DeploymentRef is empty. An
// unknown (or already finished) deployment is an error matching ErrNotFound.
func (c *Client) CancelDeployment(ctx context.Context, id string, force bool) (DeploymentRef, error) {
	if id == "" || id == "." || id == ".." {
		return DeploymentRef{}, c.argError("DELETE", "/v2/deployments/"+id, fmt.Errorf("invalid deployment id %q", id))
	}
	p := "/v2/deployments/" + id
	resp, err := c.do(ctx, call{
		method: http.MethodDelete,
		url:    c.endpoint(p, "/v2/deployments/"+url.PathEscape(id), url.Values{"force": {strconv.FormatBool(force)}}),
		path:   p,
		route:  "/v2/deployments/{id}",
	})
	if err != nil {
		return DeploymentRef{}, err
	}
	var ref DeploymentRef
	if force || resp.status == http.StatusAccepted {
		return ref, nil
	}
	if err := c.decode(resp, "DELETE", p, &ref); err != nil {
		return ref, err
	}
	if ref.DeploymentID == "" {
		return ref, fmt.Errorf("marathon %s: DELETE %s: the answer names no rollback deployment", c.cluster, p)
	}
	return ref, nil
}

// Ping checks that Marathon answers (GET /ping). Credentials are sent, but
// only a DC/OS Admin Router checks them on this path.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, call{
		method: http.MethodGet,
		url:    c.endpoint("/ping", "/ping", nil),
		path:   "/ping",
		route:  "/ping",
		safe:   true,
	})
	return err
}
