package formats

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
)

// Harbor 2.x webhooks, in either payload format a policy can choose:
//
//   - "Default" (application/json): {"type","occur_at","operator","event_data"}.
//     type is PUSH_ARTIFACT (pushImage before Harbor 2.0), PULL_ARTIFACT,
//     DELETE_ARTIFACT, SCANNING_*, QUOTA_*, REPLICATION, TAG_RETENTION...
//     No id: the key is repo_full_name + tag + digest + occur_at.
//   - "CloudEvents" (2.8+, application/cloudevents+json, structured mode):
//     type harbor.artifact.pushed etc., an id Harbor keeps across retries,
//     the operator as an extension and event_data as data.
//
// In both, each resource is one artifact: resource_url is
// "host/project/repo:tag" (or "@digest"), and untagged artifacts carry the
// digest, or nothing, as tag. "Test Endpoint" in Harbor's UI posts an empty
// body, which is taken as a ping.

func init() { register("harbor", parseHarbor) }

// harborPushTypes are the default-format types of an artifact push.
var harborPushTypes = map[string]bool{"PUSH_ARTIFACT": true, "pushImage": true}

// harborPushedType is the CloudEvents type of an artifact push.
const harborPushedType = "harbor.artifact.pushed"

type harborHook struct {
	// SpecVersion only tells a CloudEvent that arrived without its
	// Content-Type from a default-format payload.
	SpecVersion json.RawMessage `json:"specversion"`
	Type        string          `json:"type"`
	OccurAt     json.Number     `json:"occur_at"`
	Operator    string          `json:"operator"`
	EventData   json.RawMessage `json:"event_data"`
}

type harborEventData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
	Repository *struct {
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

func parseHarbor(d Delivery) (Result, error) {
	if len(bytes.TrimSpace(d.Body)) == 0 {
		return Result{Ignored: 1}, nil
	}
	mt, _, _ := mime.ParseMediaType(d.Header.Get("Content-Type"))
	if strings.HasPrefix(mt, "application/cloudevents") || d.Header.Get("Ce-Specversion") != "" {
		ev, err := readCloudEvent("harbor", d)
		if err != nil {
			return Result{}, err
		}
		return harborCloudEvent("harbor", ev)
	}
	var h harborHook
	if err := decodeObject("harbor", "body", d.Body, &h); err != nil {
		return Result{}, err
	}
	if h.SpecVersion != nil {
		ev, err := readStructured("harbor", d.Body)
		if err != nil {
			return Result{}, err
		}
		return harborCloudEvent("harbor", ev)
	}
	switch {
	case h.Type == "":
		return Result{}, malformed("harbor: type is missing")
	case !harborPushTypes[h.Type]:
		return Result{Ignored: 1}, nil
	}
	at, sec, err := epochSeconds("harbor", "occur_at", h.OccurAt)
	if err != nil {
		return Result{}, err
	}
	pushes, err := harborArtifacts("harbor", "event_data", h.EventData)
	if err != nil {
		return Result{}, err
	}
	for i := range pushes {
		p := &pushes[i]
		p.Actor, p.PushedAt = h.Operator, at
		p.UpstreamID = Composite(p.Repository, p.Tag, p.Digest, sec)
	}
	return Result{Pushes: pushes}, nil
}

// harborCloudEvent maps a CloudEvent from Harbor. It takes the format's name
// so that the generic cloudevents parser can share it. Harbor types other
// than a push are ignored; types from anything else are not Harbor's.
func harborCloudEvent(format string, ev cloudEvent) (Result, error) {
	switch {
	case ev.Type == harborPushedType:
	case strings.HasPrefix(ev.Type, "harbor."):
		return Result{Ignored: 1}, nil
	default:
		return Result{}, malformed("%s: CloudEvent type %q is not a Harbor event", format, ev.Type)
	}
	pushes, err := harborArtifacts(format, "data", ev.Data)
	if err != nil {
		return Result{}, err
	}
	for i := range pushes {
		p := &pushes[i]
		p.Actor, p.PushedAt = ev.Extensions["operator"], ev.Time
		p.UpstreamID = ev.ID
		if len(pushes) > 1 {
			// One event id for several artifacts would make them one
			// event after de-duplication.
			p.UpstreamID = Composite(ev.ID, p.Tag, p.Digest)
		}
	}
	return Result{Pushes: pushes}, nil
}

// harborArtifacts reads event_data (the CloudEvents data) found at path,
// one push per resource; the caller adds actor, time and id.
func harborArtifacts(format, path string, raw json.RawMessage) ([]Push, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, malformed("%s: %s is missing", format, path)
	}
	var ed harborEventData
	if err := decodeObject(format, path, raw, &ed); err != nil {
		return nil, err
	}
	switch {
	case ed.Repository == nil:
		return nil, malformed("%s: %s.repository is missing", format, path)
	case len(ed.Resources) == 0:
		return nil, malformed("%s: %s.resources is missing or empty", format, path)
	}
	repo := ed.Repository.RepoFullName
	pushes := make([]Push, 0, len(ed.Resources))
	for i, res := range ed.Resources {
		rp := fmt.Sprintf("%s.resources[%d]", path, i)
		if err := checkImage(format, path+".repository.repo_full_name", repo,
			rp+".tag", res.Tag, rp+".digest", res.Digest); err != nil {
			return nil, err
		}
		host := ""
		if res.ResourceURL != "" {
			ref, ok := splitRef(res.ResourceURL)
			switch {
			case !ok || !validHost(ref.Host):
				return nil, malformed("%s: %s.resource_url %q does not start with a registry host", format, rp, res.ResourceURL)
			case ref.Repository != repo:
				// The host is taken from here, so it must name this artifact.
				return nil, malformed("%s: %s.resource_url %q is not in repository %q", format, rp, res.ResourceURL, repo)
			}
			host = ref.Host
		}
		pushes = append(pushes, Push{Registry: host, Repository: repo, Tag: res.Tag, Digest: res.Digest})
	}
	return pushes, nil
}
