package deployer

import (
	"context"
	"strings"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// One Marathon (or Docker host) may serve several environments: an
// integration cluster written as two cluster entries, dev and tst, each
// managing the workloads that run its own registry's images. A dev app
// changed by hand to an image of the tst registry is dev's drift, and
// must not become tst's app on the next pass (tst pushes would then deploy
// over it). Entries on the same endpoint are siblings; a workload a
// sibling manages (its inventory record says so, and it has not left) is
// not taken over.

// siblingsOf lists, for every cluster, the other entries on the same
// platform endpoint.
func siblingsOf(clusters []config.Cluster) map[string][]string {
	byEndpoint := map[string][]string{}
	for _, cl := range clusters {
		k := endpointKey(cl)
		byEndpoint[k] = append(byEndpoint[k], cl.Name)
	}
	out := map[string][]string{}
	for _, cl := range clusters {
		for _, n := range byEndpoint[endpointKey(cl)] {
			if n != cl.Name {
				out[cl.Name] = append(out[cl.Name], n)
			}
		}
	}
	return out
}

func endpointKey(cl config.Cluster) string {
	where := cl.Docker.Host
	if cl.Platform() == config.ClusterMarathon {
		where = cl.Marathon.URL
	}
	return cl.Platform() + " " + strings.ToLower(strings.TrimRight(where, "/"))
}

// claimedBy names the sibling that manages the workload, if one does.
func (c *cluster) claimedBy(ctx context.Context, id string) string {
	for _, s := range c.siblings {
		rec, ok, err := c.store.inv.Get(ctx, s, id)
		if err == nil && ok && managedBefore(rec) && rec.LeftManagement == "" {
			return s
		}
	}
	return ""
}
