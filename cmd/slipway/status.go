package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

func statusCmd() *cobra.Command {
	var nf natsFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--config FILE | --nats URL] [--json]",
		Short: "Show what runs where: the inventory of every cluster's managed apps",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, _, err := nf.dial("slipway status")
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var records []inventory.Record
			inv, err := inventory.Bind(ctx, conn.JS)
			switch {
			case errors.Is(err, jetstream.ErrBucketNotFound):
				// No deployer has written yet: nothing is recorded, which
				// is no error.
			case err != nil:
				return err
			default:
				if records, err = inv.List(ctx); err != nil {
					return err
				}
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
	nf.add(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the records as JSON")
	return cmd
}

func printStatus(out io.Writer, records []inventory.Record) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLUSTER\tENV\tAPP\tIMAGE\tPOLICY\tUPDATED\tNOTE")
	if len(records) == 0 {
		if err := w.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintln(out, "(nothing recorded yet: the deployer records the apps that opt in with the slipway.policy label)")
		return err
	}
	for _, r := range records {
		note := ""
		if r.Drift != "" {
			note = "drift: runs " + r.Drift
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Environment, r.AppID, shortenDigests(r.Image),
			r.Policy, r.UpdatedAt.Local().Format("2006-01-02 15:04"), note)
	}
	return w.Flush()
}
