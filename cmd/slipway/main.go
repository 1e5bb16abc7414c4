// Command slipway runs Slipway's services and talks to a running Slipway:
// run, events tail, approvals, status, config check, version.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "slipway:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "Container delivery from registry push to running Marathon apps, on NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), demoCmd(), eventsCmd(), approvalsCmd(), statusCmd(), dlqCmd(), configCmd(), versionCmd())
	return root
}
