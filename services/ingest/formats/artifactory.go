package formats

import (
	"regexp"
	"strings"
)

// JFrog Artifactory predefined webhooks: {"domain","event_type","data",
// "subscription_key","jpd_origin","source"}. Only the docker domain's
// "pushed" (a tag was pushed) is an image push. The payload has no event
// id, no time and no user ("source" is the emitting service, e.g.
// "jfrog/jfrt@01h9…"), and no registry host: the Docker access method
// (subdomain, port, repository path) decides it, so it comes from config.

func init() { register("artifactory", parseArtifactory) }

type artifactoryHook struct {
	Domain    string `json:"domain"`
	EventType string `json:"event_type"`
	Data      *struct {
		RepoKey   string `json:"repo_key"`
		Path      string `json:"path"`
		Name      string `json:"name"`
		SHA256    string `json:"sha256"`
		Size      int64  `json:"size"`
		ImageName string `json:"image_name"`
		Tag       string `json:"tag"`
	} `json:"data"`
}

// Artifactory stores the children of a manifest list in folders named
// "sha256__<hex>"; a notification naming one as its tag is about a child.
var artifactoryDigestFolder = regexp.MustCompile(`^sha256__([0-9a-f]{64})$`)

func parseArtifactory(d Delivery) (Result, error) {
	var hook artifactoryHook
	if err := decodeObject("artifactory", "body", d.Body, &hook); err != nil {
		return Result{}, err
	}
	switch {
	case hook.Domain == "":
		return Result{}, malformed("artifactory: domain is missing")
	case hook.EventType == "":
		return Result{}, malformed("artifactory: event_type is missing")
	case hook.Domain != "docker", hook.EventType != "pushed":
		// deleted, promoted, and the artifact/build/release-bundle domains.
		return Result{Ignored: 1}, nil
	case hook.Data == nil:
		return Result{}, malformed("artifactory: data is missing")
	}
	data := hook.Data
	switch {
	case data.RepoKey == "":
		return Result{}, malformed("artifactory: data.repo_key is missing")
	case data.SHA256 == "":
		return Result{}, malformed("artifactory: data.sha256 is missing")
	case data.Size < 0:
		return Result{}, malformed("artifactory: data.size is negative")
	}
	digest := "sha256:" + strings.ToLower(data.SHA256)
	if !validDigest(digest) {
		return Result{}, malformed("artifactory: data.sha256 %q is not a SHA-256 hex digest", data.SHA256)
	}
	tag := data.Tag
	if m := artifactoryDigestFolder.FindStringSubmatch(tag); m != nil {
		tag = "sha256:" + m[1]
	}
	if err := checkImage("artifactory", "data.image_name", data.ImageName, "data.tag", tag, "data.sha256", digest); err != nil {
		return Result{}, err
	}
	return Result{Pushes: []Push{{
		Repository:    data.ImageName,
		RepositoryKey: data.RepoKey,
		Tag:           tag,
		Digest:        digest,
		Size:          data.Size,
		UpstreamID:    Composite(data.RepoKey, data.ImageName, data.Tag, strings.ToLower(data.SHA256)),
	}}}, nil
}
