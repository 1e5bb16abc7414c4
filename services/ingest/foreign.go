package ingest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/slipway-cd/slipway/services/ingest/formats"
)

// refuseForeign keeps Slipway to the registries it was given. A push whose
// payload names a host that is not the environment's registry (its host or
// one of its aliases) is never stored: anyone who can post to a source could
// otherwise make the promoter fetch from, and the clusters run, images of a
// registry nobody configured.
//
// What the sender sees depends on the sender. Most get the contract's 400
// for the whole delivery, which then changes nothing. A sender that repeats
// a refused delivery for ever, or disables the webhook over it
// (formats.RetriesRefusals), gets its 202 with the foreign pushes counted as
// ignored, so that one bad push does not block every push behind it. Either
// way the metric (outcome="foreign_registry") and a log line naming the
// source, the host and the expected host tell the operator.
//
// Each push is held to the registry of the environment it was routed to.
// refuseForeign returns the pushes to store and how many it dropped, or
// the answer when it refuses the delivery.
func (h *handler) refuseForeign(ctx context.Context, src *source, pushes []routed) ([]routed, int, reply, bool) {
	own := pushes[:0:0]
	var foreign []routed
	for _, p := range pushes {
		if p.Registry == "" || p.dest.registry.Names(p.Registry) {
			own = append(own, p)
		} else {
			foreign = append(foreign, p)
		}
	}
	if len(foreign) == 0 {
		return pushes, 0, reply{}, false
	}
	first := foreign[0]
	h.metrics.event(src, outcomeForeign, len(foreign))
	src.foreign.Add(int64(len(foreign)))
	src.foreignLog.Do(func() {
		h.log.WarnContext(ctx, "push of a foreign registry refused: declare the host in the environment's registry.aliases if it is another name of the same registry",
			"source", src.name, "host", first.Registry, "expected_host", first.dest.registry.Host, "aliases", first.dest.registry.Aliases,
			"environment", first.dest.environment, "refused_since_last_line", src.foreign.Swap(0))
	})
	if formats.RetriesRefusals(src.format) {
		return own, len(foreign), reply{}, false
	}
	return nil, 0, reply{http.StatusBadRequest, errorBody{fmt.Sprintf(
		"%s: registry %q is not environment %s's registry; nothing was stored", src.format, first.Registry, first.dest.environment)}}, true
}
