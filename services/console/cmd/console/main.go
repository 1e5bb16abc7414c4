// Command console runs Slipway's web console alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/console"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const about = `The console shows what runs where (the release matrix), image pages, the
approvals queue, the live event timeline, dead letters, inventory search and the
audit, behind OpenID Connect login and per-environment roles. "slipway run --only
console" runs the same service inside the one binary.`

func main() { app.Main(console.New(), app.Binary{About: about, Version: version}) }
