// Package buildinfo is the version a Slipway binary reports: on its command
// line (--version) and as service.version on its traces.
//
// It is, in this order: what the binary's main was linked with
// (-ldflags "-X main.version=v1.2.3", handed over with SetVersion); the module's
// version when the binary was built from a module (go install
// …@v1.2.3); the commit it was built from, with "+dirty" when the work
// tree had changes (go build in a git clone stamps both); "devel" when the
// build recorded none of these (go build -buildvcs=false, go run).
package buildinfo

import (
	"runtime/debug"
	"sync"
)

var (
	mu       sync.Mutex
	override string
)

// SetVersion makes v the version, whatever the build recorded; "" changes
// nothing. A binary's main calls it with the value its main.version was
// linked with.
func SetVersion(v string) {
	if v == "" {
		return
	}
	mu.Lock()
	override = v
	mu.Unlock()
}

// Version returns the binary's version.
func Version() string {
	mu.Lock()
	v := override
	mu.Unlock()
	if v != "" {
		return v
	}
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
}

// fromBuildInfo is the version the build information records (bi may be
// nil: a binary built without module support).
func fromBuildInfo(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel"
	}
	// A module version, or a pseudo-version that already names the commit.
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	// 12 hex digits, as git and Go's pseudo-versions abbreviate a commit.
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
