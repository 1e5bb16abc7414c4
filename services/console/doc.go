// Package console is Slipway's web console: the release matrix (what runs
// where), image pages (one digest's causal timeline), the approvals queue
// with bulk decisions, the live event timeline, dead letters, inventory
// search and the audit of every decision and manual action.
//
// It renders HTML on the server from Go templates with its assets embedded
// in the binary; every read view works without JavaScript, and a small
// script of its own adds live updates (server-sent events) and bulk
// selection. It reads what the other services keep (the event stream, the
// approvals and inventory buckets, the dead-letter stream) and changes
// state only through the code paths the API and the CLI use (package
// approval's decisions, action.requested events, bus.Redrive).
//
// Users log in with OpenID Connect (package auth); what each may see and do
// per environment comes from the configured roles (package access). Without
// console.auth.oidc it refuses to start unless console.auth.none is set.
package console
