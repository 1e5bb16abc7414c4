package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	fmt.Fprintln(w, "CLUSTER\tENV\tAPP\tPLATFORM\tIMAGE\tPOLICY\tINSTANCES\tNODES\tUPDATED\tNOTE")
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
		if r.Refused != nil {
			note = strings.TrimPrefix(note+"; "+refusedNote(r.Refused), "; ")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Environment, r.AppID, platformOf(r),
			shortenDigests(r.Image), r.Policy, instancesOf(r), nodesOf(r), r.UpdatedAt.Local().Format("2006-01-02 15:04"), note)
	}
	return w.Flush()
}

// refusedNote names the direct push a workload was not given because its
// environment deploys only promoted images, and who pushed it.
func refusedNote(r *inventory.Refusal) string {
	by := r.Actor
	if by == "" {
		by = "an unnamed pusher"
	}
	return "refused direct push " + shortenDigests(r.Image) + " by " + by
}

// platformOf names the record's platform; records written before Slipway
// drove other platforms than Marathon have none and are Marathon's.
func platformOf(r inventory.Record) string {
	if r.Platform == "" {
		return "marathon"
	}
	return r.Platform
}

// instancesOf shows the instance counts as running/wanted and how many are
// healthy. Records written before Slipway counted instances have no
// platform and no counts: they show "-" rather than a misleading 0/0.
func instancesOf(r inventory.Record) string {
	if r.Platform == "" && r.Wanted == 0 && r.Running == 0 && r.Healthy == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%d healthy)", r.Running, r.Wanted, r.Healthy)
}

// maxNodesListed is how many nodes a table row names before it only counts
// them, so a service spread over a large cluster keeps the row readable;
// --json lists them all.
const maxNodesListed = 3

func nodesOf(r inventory.Record) string {
	switch {
	case len(r.Nodes) == 0:
		return "-"
	case len(r.Nodes) > maxNodesListed:
		return fmt.Sprintf("%d nodes", len(r.Nodes))
	default:
		return strings.Join(r.Nodes, ",")
	}
}
