package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3". Without
// it the binary reports the version its build recorded (buildinfo).
var version = ""

func init() { buildinfo.SetVersion(version) }

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version (also: slipway --version)",
		Args:  noArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "slipway", buildinfo.Version())
		},
	}
}
