// Package ingest is Slipway's entry point for registry push webhooks:
// POST /webhooks/{source} (or /webhooks/{source}/{token}) is authenticated
// with the source's mechanism, parsed with the source's format, normalised
// to the tagged manifest pushes, and each push is stored on the SLIPWAY
// stream as a dev.slipway.image.pushed.v1 event. The sender gets 202 only
// once JetStream has acknowledged every event, and 503 when it could not, so
// that the registry retries; deterministic event ids make those retries
// duplicates that JetStream drops.
//
// The data path of one request reads top to bottom in webhook.go (HTTP),
// event.go (push → event) and publish.go (events → JetStream).
package ingest
