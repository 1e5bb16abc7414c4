package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// Output formats of status and where.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatCSV   = "csv"
)

// statusFilter is the inventory filter (inventory.Filter) as flags.
type statusFilter struct{ inventory.Filter }

func (f *statusFilter) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.Env, "env", "", "only workloads of this environment")
	fs.StringVar(&f.Cluster, "cluster", "", "only workloads of this cluster")
	fs.StringVar(&f.Image, "image", "", "only workloads whose image contains this text or is this image reference")
	fs.StringVar(&f.Repository, "repository", "", `only workloads of repositories matching this glob ("apps/**"; with or without the registry host)`)
	fs.StringVar(&f.Digest, "digest", "", "only workloads running this digest (a prefix will do, with or without sha256:)")
	fs.StringVar(&f.Node, "node", "", "only workloads with an instance on this node")
	fs.BoolVar(&f.Unmanaged, "unmanaged", false, "only workloads Slipway does not manage (no slipway.policy label)")
	fs.BoolVar(&f.Drift, "drift", false, "only workloads that drifted from what Slipway put there, or left its management")
}

func (f *statusFilter) compile(cmd *cobra.Command) error {
	if err := f.Compile(); err != nil {
		return usageErrorf(cmd, "--%v", err)
	}
	return nil
}

// formatFlag is --format with --json as its alias.
type formatFlag struct {
	format  string
	asJSON  bool
	choices []string
}

func (f *formatFlag) add(cmd *cobra.Command, choices ...string) {
	f.choices = choices
	cmd.Flags().StringVar(&f.format, "format", formatTable, "output: "+strings.Join(choices, ", "))
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON (same as --format json)")
}

func (f *formatFlag) resolve(cmd *cobra.Command) (string, error) {
	if !slices.Contains(f.choices, f.format) {
		return "", usageErrorf(cmd, "--format: %q is not one of %s", f.format, strings.Join(f.choices, ", "))
	}
	if f.asJSON {
		if cmd.Flags().Changed("format") && f.format != formatJSON {
			return "", usageErrorf(cmd, "--json and --format %s contradict each other", f.format)
		}
		return formatJSON, nil
	}
	return f.format, nil
}

func statusCmd() *cobra.Command {
	var nf natsFlags
	var filter statusFilter
	var format formatFlag
	cmd := &cobra.Command{
		Use:   "status [--config FILE | --nats URL] [--env E] [--cluster C] [--image I] [--repository GLOB] [--digest D] [--node N] [--unmanaged] [--drift] [--format table|json|csv]",
		Short: "Show what runs where: every workload of every cluster, managed or not, its image, digest, nodes and last deployment",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.resolve(cmd)
			if err != nil {
				return err
			}
			if err := filter.compile(cmd); err != nil {
				return err
			}
			records, err := loadInventory(cmd.Context(), nf, "slipway status")
			if err != nil {
				return err
			}
			recorded := len(records) > 0
			records = filter.Apply(records)
			switch out {
			case formatJSON:
				return writeJSON(cmd.OutOrStdout(), records)
			case formatCSV:
				return writeCSV(cmd.OutOrStdout(), records)
			}
			if recorded && len(records) == 0 {
				return printStatusNone(cmd.OutOrStdout(), "(no workload matches)")
			}
			return printStatus(cmd.OutOrStdout(), records)
		},
	}
	nf.add(cmd.Flags())
	filter.add(cmd)
	format.add(cmd, formatTable, formatJSON, formatCSV)
	return cmd
}

// loadInventory reads every inventory record. Before any deployer wrote
// one there is no bucket, which is no error: nothing is recorded.
func loadInventory(parent context.Context, nf natsFlags, name string) ([]inventory.Record, error) {
	conn, _, err := nf.dial(name)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	return inventory.ListAll(ctx, conn.JS)
}

func writeJSON(out io.Writer, records []inventory.Record) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if records == nil {
		records = []inventory.Record{}
	}
	return enc.Encode(records)
}

// csvHeader names the CSV columns, one row per workload; nodes are joined
// with ';'.
var csvHeader = []string{
	"cluster", "environment", "platform", "appId", "managed", "policy", "image", "registry", "repository", "tag",
	"digest", "digestReason", "wanted", "running", "healthy", "nodes", "revision", "updatedAt", "drift",
	"driftDigest", "leftManagement", "lastDeploymentImage", "lastDeploymentOutcome", "lastDeploymentAt", "lastDeploymentEventId",
	"causeId", "approvalId", "approver", "lastDeploymentAction", "lastDeploymentActor",
}

func writeCSV(out io.Writer, records []inventory.Record) error {
	w := csv.NewWriter(out)
	if err := w.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range records {
		d := r.LastDeployment
		if d == nil {
			d = &inventory.Deployment{}
		}
		at := ""
		if !d.At.IsZero() {
			at = d.At.UTC().Format(time.RFC3339)
		}
		if err := w.Write([]string{
			r.Cluster, r.Environment, platformOf(r), r.AppID, strconv.FormatBool(r.Managed), r.Policy, r.Image,
			r.Registry, r.Repository, r.Tag, r.Digest, r.DigestReason, strconv.Itoa(r.Wanted), strconv.Itoa(r.Running),
			strconv.Itoa(r.Healthy), strings.Join(r.Nodes, ";"), r.Revision, r.UpdatedAt.UTC().Format(time.RFC3339),
			r.Drift, r.DriftDigest, r.LeftManagement, d.ToImage, d.Outcome, at, d.EventID, d.CauseID, d.ApprovalID, d.Approver,
			d.Action, d.Actor,
		}); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

const statusHeader = "CLUSTER\tENV\tAPP\tPLATFORM\tIMAGE\tDIGEST\tPOLICY\tINSTANCES\tNODES\tDEPLOYMENT\tUPDATED\tNOTE"

// printStatusNone prints the table's headers and why it has no rows.
func printStatusNone(out io.Writer, why string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, statusHeader)
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, why)
	return err
}

func printStatus(out io.Writer, records []inventory.Record) error {
	if len(records) == 0 {
		return printStatusNone(out, "(nothing recorded yet: the deployer records every workload of its clusters at each reconcile)")
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, statusHeader)
	for _, r := range records {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Environment, r.AppID, platformOf(r),
			shortenDigests(r.Image), shortDigest(r.Digest), orDash(r.Policy), instancesOf(r), nodesOf(r), deploymentOf(r),
			r.UpdatedAt.Local().Format("2006-01-02 15:04"), noteOf(r))
	}
	return w.Flush()
}

// noteOf says what an auditor should look at: a workload Slipway does not
// manage, drift, a departure from management, a refused direct push.
func noteOf(r inventory.Record) string {
	var notes []string
	if !r.Managed && r.LeftManagement == "" {
		notes = append(notes, "unmanaged")
	}
	switch r.LeftManagement {
	case "":
	case "unlabelled": // the words events list, history and the notifier use
		notes = append(notes, "left management: label removed")
	default:
		notes = append(notes, "left management: "+r.LeftManagement)
	}
	if r.Drift != "" {
		notes = append(notes, "drift: runs "+driftOf(r)+" by hand")
	}
	if r.Refused != nil {
		notes = append(notes, refusedNote(r.Refused))
	}
	return strings.Join(notes, "; ")
}

// driftOf is the image a drifted workload runs, with the digest it runs
// when the image names a tag alone.
func driftOf(r inventory.Record) string {
	if r.DriftDigest == "" || strings.Contains(r.Drift, r.DriftDigest) {
		return shortenDigests(r.Drift)
	}
	return shortenDigests(r.Drift) + " (" + shortDigest(r.DriftDigest) + ")"
}

// shortDigest shows a digest as docker does: its first 12 hex digits.
func shortDigest(d string) string { return orDash(inventory.ShortDigest(d)) }

// deploymentOf is the last deployment's outcome, and its image when it is
// not the one the workload is recorded with.
func deploymentOf(r inventory.Record) string {
	d := r.LastDeployment
	if d == nil {
		return "-"
	}
	out := d.Outcome
	if d.ToImage != r.Image {
		out += " " + shortenDigests(d.ToImage)
	}
	if d.Action != "" {
		// A deployment a person asked for says who.
		by := d.Actor
		if by == "" {
			by = "someone"
		}
		out += " (" + d.Action + " by " + by + ")"
	}
	return out
}

// refusedNote names the direct push a workload was not given because its
// environment deploys only promoted images, and who pushed it.
func refusedNote(r *inventory.Refusal) string {
	by := r.Actor
	if by == "" {
		by = "an unnamed pusher"
	}
	if r.Reason != "" {
		return "refused " + shortenDigests(r.Image) + ": " + r.Reason
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
// --format json and csv list them all.
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
