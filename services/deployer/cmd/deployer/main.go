// Command deployer runs Slipway's deployer service alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/deployer"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const about = `The deployer rolls a pushed or promoted image out to every Marathon app that opted
in (the slipway.policy label) on the clusters of its environment, follows the
deployment to health or rolls it back, keeps the inventory of what runs where and
reports drift. "slipway run --only deployer" runs the same service inside the one
binary.`

func main() { app.Main(deployer.New(), app.Binary{About: about, Version: version}) }
