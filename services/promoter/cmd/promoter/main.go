// Command promoter runs Slipway's promoter service alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/promoter"
)

func main() { app.Main(promoter.New()) }
