// Command printversion prints buildinfo.Version() as a Slipway binary's main
// would, for the tests that build it with and without -ldflags.
package main

import (
	"fmt"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
)

var version = ""

func main() {
	buildinfo.SetVersion(version)
	fmt.Println(buildinfo.Version())
}
