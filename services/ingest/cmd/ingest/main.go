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

func main() { app.Main(ingest.New()) }
