// Command notifier runs Slipway's notifier service alone.
package main

import (
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/services/notifier"
)

func main() { app.Main(notifier.New()) }
