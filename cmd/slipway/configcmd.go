package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/promoter"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the configuration file"}
	var path string
	check := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a configuration file and exit non-zero, naming each problem, if it is bad",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			// Each service checks its part beyond what the loader knows
			// (webhook formats, for instance). What it says goes to a
			// terminal: without the file's secrets.
			for _, validate := range []func(*config.Config) error{ingest.Validate, promoter.Validate, deployer.Validate, notifier.Validate} {
				if err := validate(cfg); err != nil {
					return cfg.Redactor().Error(fmt.Errorf("config %s: %w", path, err))
				}
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
