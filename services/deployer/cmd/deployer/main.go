// Command deployer runs Slipway's deployer service alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/deployer"
)

func main() { app.Main(deployer.New()) }
