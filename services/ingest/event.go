package ingest

import (
	"context"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/ingest/formats"
)

// event turns one normalised push into its image.pushed event, filling
// in what the payload lacked: the registry host, the digest, the time.
func (h *handler) event(ctx context.Context, src *source, p formats.Push) (events.Event, error) {
	// The environment's registry, never the payload's host: consumers
	// pull, copy and deploy from what the event names.
	registry := src.registry.Host
	if src.repositoryPath && p.RepositoryKey != "" {
		p.Repository = p.RepositoryKey + "/" + p.Repository
	}
	if p.Digest == "" {
		h.resolveDigest(ctx, src, &p)
	}
	if p.PushedAt.IsZero() {
		p.PushedAt = h.now()
	}
	return events.New(ctx, events.Spec{
		ID:          eventID(src, registry, p),
		Type:        events.TypeImagePushed,
		Source:      "/slipway/ingest/" + src.name,
		Environment: src.environment,
		Subject:     events.ImageReference(registry, p.Repository, p.Tag, p.Digest),
		Time:        p.PushedAt,
		Data: events.ImagePushed{
			Environment: src.environment,
			Registry:    registry,
			Repository:  p.Repository,
			Tag:         p.Tag,
			Digest:      p.Digest,
			MediaType:   p.MediaType,
			Size:        p.Size,
			Actor:       p.Actor,
			Source:      src.name,
			Format:      src.format,
			UpstreamID:  p.UpstreamID,
			PushedAt:    p.PushedAt.UTC(),
		},
	})
}

// eventID is deterministic, so that JetStream's duplicate window drops what
// was already stored.
//
// With a digest the id is content-addressed: environment, registry,
// repository, tag and digest. A registry's retry, a second notification of
// the same push (Docker Hub calls once per platform of a multi-arch push),
// and a re-push of the same tag with the same content all map to the same id
// and produce one event. The price: a tag that moves away and back to a
// digest it pointed to within the duplicate window is not announced the
// second time (consumers already acted on that digest for that tag).
//
// Without a digest (the format has none and the registry could not be
// asked), all that identifies the push is the sender's delivery: the
// source and the upstream id (the registry's event id, or the composite key
// the parser derived).
func eventID(src *source, registry string, p formats.Push) string {
	const kind = "image.pushed"
	if p.Digest != "" {
		return events.ID(kind, src.environment, registry, p.Repository, p.Tag, p.Digest)
	}
	return events.ID(kind, src.environment, src.name, p.UpstreamID)
}

// resolveDigest asks the environment's registry what the tag points to.
// Failing that, the event goes out without a digest and consumers resolve it
// themselves; the warning names the image, never the credentials.
func (h *handler) resolveDigest(ctx context.Context, src *source, p *formats.Push) {
	m, err := src.resolver.Resolve(ctx, p.Repository, p.Tag)
	if err != nil {
		h.log.WarnContext(ctx, "publishing without digest: could not resolve the tag",
			"source", src.name, "image", src.resolver.Host()+"/"+p.Repository+":"+p.Tag, "error", err)
		return
	}
	p.Digest = m.Digest
	if p.MediaType == "" {
		p.MediaType = m.MediaType
	}
	if p.Size == 0 {
		p.Size = m.Size
	}
}
