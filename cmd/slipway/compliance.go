package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/services/deployer/compliance"
)

// errViolations makes the command exit 1 when something breaks a rule, so
// that a pipeline or an audit script can gate on it.
type errViolations int

func (n errViolations) Error() string {
	if n == 1 {
		return "1 compliance violation"
	}
	return fmt.Sprintf("%d compliance violations", int(n))
}

// errNotChecked: no deployer has checked the rules yet; nothing is known
// to comply, so the command exits 1.
var errNotChecked = errors.New("no compliance check has run yet: no deployer has checked compliance[] rules on this system, so nothing is known to comply")

func complianceCmd() *cobra.Command {
	var (
		nf     natsFlags
		env    string
		format string
	)
	cmd := &cobra.Command{
		Use:   "compliance [--env E] [--format table|json] [--config FILE | --nats URL]",
		Short: "List the compliance rules that running workloads break (exit 1 when any does)",
		Long: `Lists the violations of the compliance rules (compliance[] in the configuration)
that the deployer found at its last reconcile pass: one line per workload and
rule. Exits 0 when there is none, 1 when there is any or when no deployer has
checked the rules yet (nothing is known to comply), 2 when used wrongly.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageErrorf(cmd, "--format %q: use table or json", format)
			}
			conn, _, err := nf.dial("slipway compliance")
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			vs := []compliance.Violation{}
			st, err := compliance.Bind(ctx, conn.JS)
			switch {
			case errors.Is(err, compliance.ErrNoBucket):
				// Nothing checked is no proof of compliance: an audit
				// gate must not pass on it, so it fails like a violation.
				return errNotChecked
			case err != nil:
				return err
			default:
				all, err := st.List(ctx)
				if err != nil {
					return err
				}
				for _, v := range all {
					if env == "" || v.Environment == env {
						vs = append(vs, v)
					}
				}
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(vs); err != nil {
					return err
				}
			} else if err := printCompliance(cmd.OutOrStdout(), vs); err != nil {
				return err
			}
			if len(vs) > 0 {
				return errViolations(len(vs))
			}
			return nil
		},
	}
	nf.add(cmd.Flags())
	cmd.Flags().StringVar(&env, "env", "", "only violations in this environment")
	cmd.Flags().StringVar(&format, "format", "table", "output: table or json")
	return cmd
}

func printCompliance(out io.Writer, vs []compliance.Violation) error {
	if len(vs) == 0 {
		_, err := fmt.Fprintln(out, "no violations")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLUSTER\tENV\tAPP\tRULE\tKIND\tIMAGE\tSINCE\tDETAIL")
	for _, v := range vs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Cluster, v.Environment, v.AppID, v.Rule, v.Kind,
			shortenDigests(v.Image), v.Since.Local().Format("2006-01-02 15:04"), v.Detail)
	}
	return w.Flush()
}
