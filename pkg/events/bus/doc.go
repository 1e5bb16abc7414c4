// Package bus puts Slipway events on NATS JetStream and takes them off again:
// it ensures the stream, publishes with de-duplication and a wait for the ack,
// and runs durable pull consumers that retry with back-off and dead-letter
// what they cannot process, never dropping a message silently.
package bus
