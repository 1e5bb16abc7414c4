package dockerapi

import (
	"net/http"
	"regexp"
	"strings"
)

// The Docker client makes a client span of every request (otelhttp, with
// the process's tracer provider), by default named after the whole path:
// "POST /v1.41/containers/4f1c…/start" — one span name per container and
// API version, which a trace backend cannot group. spanName names it after
// the route instead ("POST /containers/{id}/start"), as the semantic
// conventions ask of client spans ({method} {route}, low cardinality).

var versionPrefix = regexp.MustCompile(`^/v1\.\d+`)

// collections are the resources whose second path segment is an object's
// id or name, unless it is one of the collection's own verbs.
var collections = map[string]bool{
	"containers": true, "services": true, "nodes": true, "tasks": true, "networks": true,
	"volumes": true, "secrets": true, "configs": true, "exec": true, "plugins": true,
}

// collectionVerbs are second segments that name an operation on the
// collection, not an object.
var collectionVerbs = map[string]bool{"json": true, "create": true, "prune": true}

// imageVerbs end an /images/{name}/… path; an image's name may itself hold
// slashes ("registry:5000/apps/web").
var imageVerbs = map[string]bool{"json": true, "history": true, "push": true, "tag": true, "get": true}

// Route is the route template of a Docker Engine API path.
func Route(path string) string {
	path = versionPrefix.ReplaceAllString(path, "")
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(segs) < 2:
		return path
	case segs[0] == "images":
		if collectionVerbs[segs[1]] || segs[1] == "search" || segs[1] == "load" {
			return "/images/" + segs[1]
		}
		if last := segs[len(segs)-1]; len(segs) > 2 && imageVerbs[last] {
			return "/images/{name}/" + last
		}
		return "/images/{name}"
	case collections[segs[0]] && !collectionVerbs[segs[1]]:
		segs[1] = "{id}"
		return "/" + strings.Join(segs, "/")
	}
	return path
}

func spanName(_ string, req *http.Request) string {
	return req.Method + " " + Route(req.URL.Path)
}
