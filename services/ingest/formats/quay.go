package formats

import (
	"bytes"
	"encoding/json"
	"sort"
)

// Quay (quay.io and Red Hat Quay) "repo_push" notifications: one request
// per push, naming the tags it updated; no digest, actor, time or id.
// Current Quay sends updated_tags as a list of names; early quay.io sent an
// object mapping each tag to an image id, which is still accepted.
// docker_url is "<server hostname>/<namespace>/<name>".

func init() { register("quay", parseQuay, retriesRefusals) }

type quayHook struct {
	Repository  string          `json:"repository"`
	DockerURL   string          `json:"docker_url"`
	UpdatedTags json.RawMessage `json:"updated_tags"`
}

func parseQuay(d Delivery) (Result, error) {
	var h quayHook
	if err := decodeObject("quay", "body", d.Body, &h); err != nil {
		return Result{}, err
	}
	if err := checkImage("quay", "repository", h.Repository, "", "", "", ""); err != nil {
		return Result{}, err
	}
	tags, err := quayTags(h.UpdatedTags)
	if err != nil {
		return Result{}, err
	}
	host := ""
	if h.DockerURL != "" {
		ref, ok := splitRef(h.DockerURL)
		if !ok || !validHost(ref.Host) {
			return Result{}, malformed("quay: docker_url %q does not start with a registry host", h.DockerURL)
		}
		host = ref.Host
	}
	if len(tags) == 0 {
		// A push that moved no tag (by digest): nothing to release.
		return Result{Ignored: 1}, nil
	}
	var r Result
	for _, tag := range tags {
		if err := checkImage("quay", "repository", h.Repository, "updated_tags", tag, "", ""); err != nil {
			return Result{}, err
		}
		r.Pushes = append(r.Pushes, Push{
			Registry:   host,
			Repository: h.Repository,
			Tag:        tag,
			UpstreamID: Composite(h.Repository, tag),
		})
	}
	return r, nil
}

// quayTags returns the updated tags, once each, in a stable order: a tag
// listed twice would otherwise become two events with one id.
func quayTags(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	var tags []string
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, malformed("quay: updated_tags is missing")
	case raw[0] == '[':
		if err := decodeJSON("quay", "updated_tags", raw, &tags); err != nil {
			return nil, err
		}
	case raw[0] == '{':
		var byTag map[string]json.RawMessage
		if err := decodeJSON("quay", "updated_tags", raw, &byTag); err != nil {
			return nil, err
		}
		for tag := range byTag {
			tags = append(tags, tag)
		}
		sort.Strings(tags)
	default:
		return nil, malformed("quay: updated_tags is neither a list of tags nor an object")
	}
	seen := make(map[string]bool, len(tags))
	out := tags[:0]
	for _, t := range tags {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}
