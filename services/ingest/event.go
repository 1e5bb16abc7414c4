package ingest

import (
	"context"

	"github.com/slipway-cd/slipway/pkg/events"
)

// event describes the image.pushed event of one normalised push, filling in
// what the payload lacked: the registry host, the digest, the time.
func (h *handler) event(ctx context.Context, src *source, p routed) events.Spec {
	// The environment's registry, never the payload's host: consumers
	// pull, copy and deploy from what the event names.
	registry := p.dest.registry.Host
	if p.Digest == "" {
		h.resolveDigest(ctx, src, &p)
	}
	if p.PushedAt.IsZero() {
		p.PushedAt = h.now()
	}
	return events.Spec{
		ID:          eventID(src, registry, p),
		Type:        events.TypeImagePushed,
		Source:      "/slipway/ingest/" + src.name,
		Environment: p.dest.environment,
		Subject:     events.ImageReference(registry, p.Repository, p.Tag, p.Digest),
		Time:        p.PushedAt,
		Data: events.ImagePushed{
			Environment: p.dest.environment,
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
	}
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
//
// Either way the id names the environment the push was routed to; a push
// is routed by what the delivery says, so a retry goes where it went.
func eventID(src *source, registry string, p routed) string {
	const kind = "image.pushed"
	if p.Digest != "" {
		return events.ID(kind, p.dest.environment, registry, p.Repository, p.Tag, p.Digest)
	}
	return events.ID(kind, p.dest.environment, src.name, p.UpstreamID)
}

// resolveDigest asks the environment's registry what the tag points to.
// Failing that, the event goes out without a digest and consumers resolve it
// themselves; the warning names the image, never the credentials.
func (h *handler) resolveDigest(ctx context.Context, src *source, p *routed) {
	m, err := p.dest.resolver.Resolve(ctx, p.Repository, p.Tag)
	if err != nil {
		h.log.WarnContext(ctx, "publishing without digest: could not resolve the tag",
			"source", src.name, "image", p.dest.resolver.Host()+"/"+p.Repository+":"+p.Tag, "error", err)
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
