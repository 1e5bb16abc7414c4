// Command ingest runs Slipway's ingest service alone:
//
//	ingest --config slipway.yaml
//
// `slipway run --only ingest` runs the same service inside the one binary.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/ingest"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const about = `Ingest receives the push webhooks of the configured registries (one endpoint per
source, /webhooks/NAME), checks their authentication and publishes each push as an
image.pushed CloudEvent on NATS JetStream, once. It also serves the approvals API,
Slack's interactions, /healthz, /readyz and /metrics. "slipway run --only ingest"
runs the same service inside the one binary.`

func main() { app.Main(ingest.New(), app.Binary{About: about, Version: version}) }
