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
func (h *handler) refuseForeign(ctx context.Context, src *source, res *formats.Result) (reply, bool) {
	own := res.Pushes[:0:0]
	var foreign []string
	for _, p := range res.Pushes {
		if p.Registry == "" || src.registry.Names(p.Registry) {
			own = append(own, p)
		} else {
			foreign = append(foreign, p.Registry)
		}
	}
	if len(foreign) == 0 {
		return reply{}, false
	}
	h.metrics.event(src, outcomeForeign, len(foreign))
	src.foreign.Add(int64(len(foreign)))
	src.foreignLog.Do(func() {
		h.log.WarnContext(ctx, "push of a foreign registry refused: declare the host in the environment's registry.aliases if it is another name of the same registry",
			"source", src.name, "host", foreign[0], "expected_host", src.registry.Host, "aliases", src.registry.Aliases,
			"environment", src.environment, "refused_since_last_line", src.foreign.Swap(0))
	})
	if formats.RetriesRefusals(src.format) {
		res.Pushes = own
		res.Ignored += len(foreign)
		return reply{}, false
	}
	return reply{http.StatusBadRequest, errorBody{fmt.Sprintf(
		"%s: registry %q is not environment %s's registry; nothing was stored", src.format, foreign[0], src.environment)}}, true
}
