package ingest

import (
	"context"

	"github.com/slipway-cd/slipway/services/ingest/formats"
)

// routed is a push and the environment it goes to.
type routed struct {
	formats.Push
	dest *destination
}

// routePushes gives each push its environment: the source's, or that of the
// source's first route that matches the push's repository and tag. A push no
// route matches is not stored: it is counted (outcome="unrouted") and
// logged at most once per rejectLogEvery, and routePushes returns how many there
// were, for the answer's ignored.
//
// The repository is final here (with Artifactory's repository key in front
// when the source says so): routes match what the event will name.
func (h *handler) routePushes(ctx context.Context, src *source, pushes []formats.Push) ([]routed, int) {
	out := make([]routed, 0, len(pushes))
	var unrouted []formats.Push
	for _, p := range pushes {
		if src.repositoryPath && p.RepositoryKey != "" {
			p.Repository = p.RepositoryKey + "/" + p.Repository
		}
		if d := src.destinationOf(p.Repository, p.Tag); d != nil {
			out = append(out, routed{Push: p, dest: d})
		} else {
			unrouted = append(unrouted, p)
		}
	}
	if len(unrouted) == 0 {
		return out, 0
	}
	h.metrics.event(src, outcomeUnrouted, len(unrouted))
	src.unrouted.Add(int64(len(unrouted)))
	src.unroutedLog.Do(func() {
		p := unrouted[0]
		h.log.WarnContext(ctx, "push matches none of the source's routes; ignored",
			"source", src.name, "repository", p.Repository, "tag", p.Tag,
			"unrouted_since_last_line", src.unrouted.Swap(0))
	})
	return out, len(unrouted)
}

// destinationOf is where a push of repository:tag goes; nil when no route
// matches. A push without a tag (by digest only) matches only a route
// without tags.
func (s *source) destinationOf(repository, tag string) *destination {
	if s.dest != nil {
		return s.dest
	}
	for _, r := range s.routes {
		if tag == "" && r.images.HasTagFilter() {
			continue
		}
		if ok, _ := r.images.Matches(repository, tag); ok {
			return r.dest
		}
	}
	return nil
}
