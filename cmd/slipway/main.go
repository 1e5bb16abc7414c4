// Command slipway runs Slipway's services and talks to a running Slipway:
// run, events tail, approvals, status, manual actions (promote, rollback,
// redeploy, dlq redrive), config check, version.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
)

func main() {
	os.Exit(cli(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the command line args and returns its exit code: 0 when the
// command did its work, 1 when it failed, 2 when it was used wrongly (then
// with a hint to the command's --help).
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if ue := (*usageError)(nil); errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\n%s\n", ue.cmd.CommandPath(), err, ue.hint())
		return 2
	}
	fmt.Fprintln(stderr, "slipway:", err)
	return 1
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "Container delivery from registry push to running Marathon apps, on NATS JetStream",
		Version:       buildinfo.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("slipway {{.Version}}\n")
	root.AddCommand(runCmd(), demoCmd(), eventsCmd(), historyCmd(), approvalsCmd(), statusCmd(), whereCmd(), complianceCmd(),
		promoteCmd(), rollbackCmd(), redeployCmd(), dlqCmd(), configCmd(), versionCmd())
	conventions(root)
	return root
}
