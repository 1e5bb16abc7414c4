package formats

import "encoding/json"

// Docker Hub repository webhooks: one request per pushed tag, no event
// type, no digest, no id. pushed_at is epoch seconds (written as a float,
// 1.417566161e+09, by old Hub versions). Official images have the namespace
// "library"; repo_name is kept as sent, the same name a pull uses.

func init() { register("dockerhub", parseDockerHub) }

// dockerHubHost is the registry behind every Docker Hub repository.
const dockerHubHost = "docker.io"

type dockerHubHook struct {
	PushData *struct {
		PushedAt json.Number `json:"pushed_at"`
		Pusher   string      `json:"pusher"`
		Tag      string      `json:"tag"`
	} `json:"push_data"`
	Repository *struct {
		RepoName string `json:"repo_name"`
	} `json:"repository"`
}

func parseDockerHub(d Delivery) (Result, error) {
	var h dockerHubHook
	if err := decodeObject("dockerhub", "body", d.Body, &h); err != nil {
		return Result{}, err
	}
	switch {
	case h.Repository == nil:
		return Result{}, malformed("dockerhub: repository is missing")
	case h.PushData == nil:
		return Result{}, malformed("dockerhub: push_data is missing")
	}
	repo, pd := h.Repository.RepoName, h.PushData
	if err := checkImage("dockerhub", "repository.repo_name", repo, "push_data.tag", pd.Tag, "", ""); err != nil {
		return Result{}, err
	}
	at, sec, err := epochSeconds("dockerhub", "push_data.pushed_at", pd.PushedAt)
	if err != nil {
		return Result{}, err
	}
	return Result{Pushes: []Push{{
		Registry:   dockerHubHost,
		Repository: repo,
		Tag:        pd.Tag,
		Actor:      pd.Pusher,
		UpstreamID: Composite(repo, pd.Tag, sec),
		PushedAt:   at,
	}}}, nil
}
