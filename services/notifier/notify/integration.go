package notify

import "github.com/slipway-cd/slipway/pkg/platform/config"

// Integration is one receiver kind in the notifier's table: the key of its
// block in a receiver entry, how its block is checked, and how a Receiver
// is made of it. Each integration package declares its own; the notifier
// lists them in one place (notifier.Integrations).
//
// A new kind ("pagerduty") needs:
//   - its block as a plain struct in pkg/platform/config (a pointer field
//     of config.Receiver with its yaml key): the file is decoded in one
//     strict pass, so the loader knows every key. A secret is a string
//     field X with a sibling XFile: the loader reads XFile, and the
//     configuration's Redactor keeps X (and every field whose name ends in
//     URL) out of errors and logs, with nothing to register;
//   - its package under services/notifier/notify: New, a Receiver, and a
//     CheckConfig for its block, declared as an Integration;
//   - one line in notifier.Integrations.
type Integration struct {
	// Kind is the key of the kind's block in a receiver ("slack").
	Kind string
	// Configured reports whether a receiver entry sets this kind's block.
	Configured func(r config.Receiver) bool
	// CheckConfig adds the problems of the kind's block of r; path is the
	// block's key path ("notify.receivers[0].slack"). It must not change r.
	CheckConfig func(r config.Receiver, path string, p *config.Problems)
	// New makes the Receiver of the entry called name.
	New func(name string, r config.Receiver, o Options) (Receiver, error)
}
