// Package targettest holds checks every target.Target must pass, shared by
// the platforms' tests.
package targettest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/services/deployer/target"
)

// UsedAtOnce uses Targets fresh from open from several goroutines at once,
// as the deployer does at start (its watch, its resync, a deployment's Get
// and Await), ten times. Run under the race detector, it catches state a
// Target (or its client) sets up on first use without a lock: the Docker
// client negotiates its API version on its first request.
func UsedAtOnce(t *testing.T, open func() target.Target, workloadID, rolloutID string) {
	t.Helper()
	for range 10 {
		tg := open()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		var wg sync.WaitGroup
		wg.Go(func() { tg.Watch(ctx, make(chan target.Change, 16)) })
		var calls sync.WaitGroup
		calls.Go(func() {
			if _, err := tg.List(ctx); err != nil {
				t.Errorf("List: %v", err)
			}
		})
		calls.Go(func() {
			if _, err := tg.Get(ctx, workloadID); err != nil {
				t.Errorf("Get: %v", err)
			}
		})
		calls.Go(func() {
			// The deadline passes at once: only the start of Await counts.
			_, _, _ = tg.Await(ctx, workloadID, rolloutID, time.Now().Add(50*time.Millisecond))
		})
		calls.Wait()
		cancel()
		wg.Wait()
	}
}
