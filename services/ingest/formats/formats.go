// Package formats parses the push notifications of every registry Slipway
// accepts into one shape, Push. One file per format; each registers its
// parser by the name operators write in a source's "format".
package formats

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Delivery is one webhook request as a parser sees it.
type Delivery struct {
	Header http.Header
	Body   []byte
}

// Push is one manifest or index pushed, as the registry reported it.
type Push struct {
	// Registry is the registry host from the payload, "" when it has none.
	Registry   string
	Repository string
	// RepositoryKey is the registry's own name of the repository the
	// image was pushed to, outside Repository (Artifactory's repo_key);
	// "" for formats without one.
	RepositoryKey string
	// Tag may be empty, or hold a digest, for the untagged children of a
	// multi-arch push; Normalize drops those.
	Tag       string
	Digest    string
	MediaType string
	Size      int64
	Actor     string
	// UpstreamID is the registry's own event or delivery id, or a composite
	// key (see Composite) when the format has none.
	UpstreamID string
	PushedAt   time.Time
}

// Result is what a delivery holds.
type Result struct {
	Pushes []Push
	// Ignored counts notifications that are not pushes of a manifest:
	// pulls, blob uploads, mounts, deletes, pings.
	Ignored int
}

// Parser turns a delivery into pushes. An error means the delivery is
// malformed; its message names what is wrong and is shown to the sender.
type Parser func(d Delivery) (Result, error)

var (
	parsers = map[string]Parser{}
	// refusalsRetried holds the formats whose sender repeats a delivery
	// answered 4xx, or gives up on the endpoint over it.
	refusalsRetried = map[string]bool{}
)

// registerOption says something about a format's sender.
type registerOption func(name string)

// retriesRefusals marks a format whose sender treats a 4xx like any
// failure: CNCF Distribution retries it for ever and its queue for the
// endpoint blocks meanwhile, Quay disables the notification after three,
// Pub/Sub redelivers it for days. A push Slipway refuses from such a sender
// is answered 2xx and counted as ignored instead, so one bad push does not
// stop every later one.
func retriesRefusals(name string) { refusalsRetried[name] = true }

func register(name string, p Parser, opts ...registerOption) {
	if _, dup := parsers[name]; dup {
		panic("formats: " + name + " registered twice")
	}
	parsers[name] = p
	for _, o := range opts {
		o(name)
	}
}

// RetriesRefusals reports whether a format's sender repeats (or stops
// sending over) a delivery answered with a 4xx; see retriesRefusals.
func RetriesRefusals(format string) bool { return refusalsRetried[format] }

// Lookup returns the parser of a format.
func Lookup(format string) (Parser, error) {
	p, ok := parsers[format]
	if !ok {
		return nil, fmt.Errorf("unknown format %q (one of %s)", format, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Names lists the registered formats, sorted.
func Names() []string {
	names := make([]string, 0, len(parsers))
	for n := range parsers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Composite builds an upstream id from the fields that identify a
// notification, for formats that carry no id of their own.
func Composite(parts ...string) string { return strings.Join(parts, "|") }

// MalformedError is returned for a delivery that is not what the format
// promises; callers answer 400 with its message.
type MalformedError struct{ Msg string }

func (e *MalformedError) Error() string { return e.Msg }

func malformed(format string, args ...any) error {
	return &MalformedError{Msg: fmt.Sprintf(format, args...)}
}
