package dockerapi

import (
	"context"
	"sync"

	"github.com/docker/docker/client"
)

// The Docker client (v28) negotiates its API version on its first request,
// writing the version as it goes, while calls that encode filters or an
// update (a listing, the event stream, a service update) read it before
// their own request: a client fresh from New used by several goroutines at
// once races on it. Ready negotiates once per client, under a lock, before
// any of them reads it; with a pinned apiVersion there is nothing to
// negotiate.

var negotiated sync.Map // *client.Client → *negotiation

type negotiation struct {
	mu   sync.Mutex
	done bool
}

// Ready returns once c has its API version (negotiated with the engine,
// or pinned), or the engine's error when it cannot be reached. Call it
// before anything else on a client others may use at the same time.
func Ready(ctx context.Context, c *client.Client) error {
	v, _ := negotiated.LoadOrStore(c, &negotiation{})
	n := v.(*negotiation)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done {
		return nil
	}
	ping, err := c.Ping(ctx)
	if err != nil {
		return err
	}
	c.NegotiateAPIVersionPing(ping)
	n.done = true
	return nil
}

// Close closes c and forgets its negotiation.
func Close(c *client.Client) error {
	negotiated.Delete(c)
	return c.Close()
}
