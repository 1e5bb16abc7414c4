package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

func statusCmd() *cobra.Command {
	var nf natsFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--config FILE | --nats URL] [--json]",
		Short: "Show what runs where: the inventory of every cluster's managed apps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, _, err := nf.dial("slipway status")
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			inv, err := inventory.Bind(ctx, conn.JS)
			if err != nil {
				return err
			}
			records, err := inv.List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if records == nil {
					records = []inventory.Record{}
				}
				return enc.Encode(records)
			}
			return printStatus(cmd.OutOrStdout(), records)
		},
	}
	nf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the records as JSON")
	return cmd
}

func printStatus(out io.Writer, records []inventory.Record) error {
	if len(records) == 0 {
		_, err := fmt.Fprintln(out, "no managed apps yet (apps opt in with the slipway.policy label)")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLUSTER\tENV\tAPP\tIMAGE\tPOLICY\tUPDATED\tNOTE")
	for _, r := range records {
		note := ""
		if r.Drift != "" {
			note = "drift: runs " + r.Drift
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Environment, r.AppID, shortDigest(r.Image),
			r.Policy, r.UpdatedAt.Local().Format("2006-01-02 15:04"), note)
	}
	return w.Flush()
}

// shortDigest abbreviates a pinned digest to 12 hex digits for the table.
func shortDigest(image string) string {
	for i := 0; i+7 < len(image); i++ {
		if image[i:i+8] == "@sha256:" && len(image) > i+8+12 {
			return image[:i+8+12]
		}
	}
	return image
}
