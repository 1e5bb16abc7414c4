package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

func whereCmd() *cobra.Command {
	var nf natsFlags
	var format formatFlag
	cmd := &cobra.Command{
		Use:   "where DIGEST|IMAGE [--config FILE | --nats URL] [--format table|json]",
		Short: "Show every place (environment, cluster, workload, nodes) that runs a digest or an image; exit 1 when none does",
		Long: `where looks the inventory up across every environment and cluster.

DIGEST is a digest or a prefix of one (sha256:ab12…, ab12…). IMAGE is an
image reference: with a digest it stands for that digest; with a tag alone
it stands for the digests the inventory knows that tag by (resolved from
the environment's registry for workloads that name the tag alone), so a
workload pinned to the same digest under another tag is found too.

A managed workload changed by hand (drift) is found by the image and
digest it runs by hand as well as by those Slipway expected there; its
NOTE says what it runs by hand.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageErrorf(cmd, "missing DIGEST or IMAGE")
			case len(args) > 1:
				return usageErrorf(cmd, "unexpected argument %q: %s takes one DIGEST or IMAGE", args[1], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := format.resolve(cmd)
			if err != nil {
				return err
			}
			records, err := loadInventory(cmd.Context(), nf, "slipway where")
			if err != nil {
				return err
			}
			found := inventory.Where(records, args[0])
			if len(found) == 0 {
				return fmt.Errorf("no workload runs %s (as far as the inventory knows)", args[0])
			}
			if out == formatJSON {
				return writeJSON(cmd.OutOrStdout(), found)
			}
			return printWhere(cmd.OutOrStdout(), found)
		},
	}
	nf.add(cmd.Flags())
	format.add(cmd, formatTable, formatJSON)
	return cmd
}

func printWhere(out io.Writer, records []inventory.Record) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ENV\tCLUSTER\tAPP\tNODES\tIMAGE\tDIGEST\tMANAGED\tNOTE")
	for _, r := range records {
		managed := "yes"
		if !r.Managed {
			managed = "no"
		}
		// IMAGE and DIGEST are what Slipway expected; NOTE says what a
		// drifted workload runs by hand instead.
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Environment, r.Cluster, r.AppID, orDash(strings.Join(r.Nodes, ",")),
			shortenDigests(r.Image), shortDigest(r.Digest), managed, noteOf(r))
	}
	return w.Flush()
}
