package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// maxInFlight bounds the events of one delivery being built (a digest
// lookup) and published at once. Deliveries are small (Distribution batches
// a few events, Quay one per updated tag); the bound keeps a large one from
// opening hundreds of requests.
const maxInFlight = 16

// publishTimeout bounds the wait for JetStream's acks. Registries time out
// their webhook calls after a few seconds and retry anyway.
const publishTimeout = 5 * time.Second

var errNotConnected = errors.New("not connected to NATS")

// storeFailureHold is how long a failed publish keeps /readyz failing
// unless a publish succeeds first (health.Outcomes).
const storeFailureHold = 30 * time.Second

// publishAll stores one event per push, concurrently, and returns once every
// ack (or failure) is in. Any failure fails the delivery: the sender retries
// it whole, and the events that were stored die as duplicates.
func (h *handler) publishAll(ctx context.Context, src *source, pushes []routed) (Counts, error) {
	var counts Counts
	if len(pushes) == 0 {
		return counts, nil
	}
	// Fail fast while disconnected: a publish would sit in the client's
	// reconnect buffer until the timeout, and the registry gives up first.
	if nc := h.js.Conn(); nc != nil && !nc.IsConnected() {
		h.metrics.event(src, outcomeFailed, len(pushes))
		return counts, errNotConnected
	}

	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if len(pushes) == 1 { // the usual delivery: no goroutine needed
		dup, err := h.store(ctx, src, pushes[0])
		return h.count(src, []result{{dup, err}}, 1)
	}
	results := make([]result, len(pushes))
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i, p := range pushes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i].duplicate, results[i].err = h.store(ctx, src, p)
		})
	}
	wg.Wait()
	return h.count(src, results, len(pushes))
}

// result is the outcome of storing one event.
type result struct {
	duplicate bool
	err       error
}

// count adds up the outcomes of a delivery's events and records them.
func (h *handler) count(src *source, results []result, total int) (Counts, error) {
	var counts Counts
	var errs []error
	for _, r := range results {
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case r.duplicate:
			counts.Duplicates++
		default:
			counts.Accepted++
		}
	}
	h.metrics.event(src, outcomeAccepted, counts.Accepted)
	h.metrics.event(src, outcomeDuplicate, counts.Duplicates)
	h.metrics.event(src, outcomeFailed, len(errs))
	if len(errs) > 0 {
		return counts, fmt.Errorf("%d of %d events not stored, the first: %w", len(errs), total, errs[0])
	}
	return counts, nil
}

// store builds the event of one push and publishes it, waiting for the ack.
func (h *handler) store(ctx context.Context, src *source, p routed) (duplicate bool, err error) {
	spec := h.event(ctx, src, p)
	start := time.Now()
	_, duplicate, err = h.pub.PublishNew(ctx, spec)
	h.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	if !errors.Is(err, context.Canceled) { // the sender went away: says nothing about NATS
		h.stored.Observe(err)
	}
	if err != nil {
		return false, fmt.Errorf("store the event of %s:%s: %w", p.Repository, p.Tag, err)
	}
	return duplicate, nil
}
