package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the configuration file"}
	var path string
	check := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a configuration file and exit non-zero, naming each problem, if it is bad",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every service checks its part (its section), in the same
			// run as the parts they share, so that one run names every
			// problem; what they say reaches the terminal without the
			// file's secrets.
			cfg, err := config.Load(path, app.Sections(services()...)...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d environments, %d webhook sources, %d promotions, %d clusters, %d receivers)\n",
				path, len(cfg.Environments), len(cfg.Ingest.Sources), len(cfg.Promotions), len(cfg.Clusters), len(cfg.Notify.Receivers))
			return nil
		},
	}
	check.Flags().StringVar(&path, "config", "slipway.yaml", "configuration file")
	cmd.AddCommand(check)
	return cmd
}
