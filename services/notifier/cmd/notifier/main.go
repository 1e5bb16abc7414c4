// Command notifier runs Slipway's notifier service alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/notifier"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const about = `The notifier routes Slipway's events to their receivers: Slack, Microsoft Teams,
e-mail, signed webhooks and CDEvents, each with retries and dead letters. "slipway
run --only notifier" runs the same service inside the one binary.`

func main() { app.Main(notifier.New(), app.Binary{About: about, Version: version}) }
