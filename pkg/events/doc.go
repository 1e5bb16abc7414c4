// Package events is Slipway's public event contract: the CloudEvent types that
// travel on the SLIPWAY JetStream stream, their data payloads, the mapping from
// event type to NATS subject, deterministic event ids, and the encoding of an
// event into a NATS message (structured JSON mode, Nats-Msg-Id, traceparent).
//
// Custom consumers import this package (and its bus subpackage) to read the
// stream; it deliberately depends only on nats.go, the CloudEvents SDK and the
// OpenTelemetry API.
package events
