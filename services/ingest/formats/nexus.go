package formats

import "strings"

// Sonatype Nexus Repository 3 "Webhook: Repository" capability with the
// component event type (X-Nexus-Webhook-Id: rm:repository:component). A
// docker component is name = image, version = tag; there is no digest and
// no registry host (each docker repository has its own connector).

func init() { register("nexus", parseNexus) }

type nexusHook struct {
	Timestamp      string `json:"timestamp"`
	NodeID         string `json:"nodeId"`
	Initiator      string `json:"initiator"`
	RepositoryName string `json:"repositoryName"`
	Action         string `json:"action"`
	Component      *struct {
		ID      string `json:"id"`
		Format  string `json:"format"`
		Name    string `json:"name"`
		Group   string `json:"group"`
		Version string `json:"version"`
	} `json:"component"`
}

func parseNexus(d Delivery) (Result, error) {
	switch id := d.Header.Get("X-Nexus-Webhook-Id"); id {
	case "":
		return Result{}, malformed("nexus: X-Nexus-Webhook-Id header is missing")
	case "rm:repository:component":
	default:
		// asset events, audit and repository-management webhooks.
		return Result{Ignored: 1}, nil
	}
	var hook nexusHook
	if err := decodeObject("nexus", "body", d.Body, &hook); err != nil {
		return Result{}, err
	}
	switch hook.Action {
	case "":
		return Result{}, malformed("nexus: action is missing")
	case "CREATED", "UPDATED":
	default:
		// DELETED, and PURGED (newer releases, sent without a component).
		return Result{Ignored: 1}, nil
	}
	c := hook.Component
	if c == nil {
		return Result{}, malformed("nexus: component is missing")
	}
	if c.Format == "" {
		return Result{}, malformed("nexus: component.format is missing")
	}
	if c.Format != "docker" {
		return Result{Ignored: 1}, nil
	}
	// Nexus strips the leading "/" of docker names only in newer releases.
	repo := strings.TrimPrefix(c.Name, "/")
	if c.Version == "" {
		return Result{}, malformed("nexus: component.version is missing")
	}
	if err := checkImage("nexus", "component.name", repo, "component.version", c.Version, "", ""); err != nil {
		return Result{}, err
	}
	at, err := optionalTime("nexus", "timestamp", hook.Timestamp)
	if err != nil {
		return Result{}, err
	}
	// initiator is "user/ip", or "anonymous"/"system" for internal work.
	actor, _, _ := strings.Cut(hook.Initiator, "/")
	id := d.Header.Get("X-Nexus-Webhook-Delivery")
	if id == "" {
		id = Composite("nexus", hook.RepositoryName, repo, c.Version, hook.Action, hook.Timestamp)
	}
	return Result{Pushes: []Push{{
		Repository: repo,
		Tag:        c.Version,
		Actor:      actor,
		UpstreamID: id,
		PushedAt:   at,
	}}}, nil
}
