// Command promoter runs Slipway's promoter service alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/promoter"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const about = `The promoter copies a pushed image to the next environment's registry when a
promotion rule says so: at once, after a soak time, or once an approver granted it.
It copies blobs registry to registry (with the image's signatures and other
referrers) and announces image.promoted or promotion.failed. "slipway run --only
promoter" runs the same service inside the one binary.`

func main() { app.Main(promoter.New(), app.Binary{About: about, Version: version}) }
