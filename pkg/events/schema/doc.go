// Package schema generates the published description of Slipway's event
// stream from the Go types in package events: a JSON Schema (draft 2020-12)
// per data type and one for the CloudEvent envelope, an AsyncAPI 3 document,
// and docs/events.md. The files are committed so that consumers in other
// languages need neither Go nor this repository's tooling; a test keeps them
// in step with the types.
//
// It lives apart from package events so that the generator's dependencies
// never reach custom consumers that import only events.
package schema

//go:generate go run ./cmd/gen-schemas -docs ../../../docs
