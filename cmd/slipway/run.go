package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	webconsole "github.com/slipway-cd/slipway/services/console"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/promoter"
)

// services lists every service `slipway run` can host, in start order.
func services() []app.Service {
	return []app.Service{ingest.New(), promoter.New(), deployer.New(), notifier.New(), webconsole.New()}
}

// optional are the services that `slipway run` without --only starts only
// when the file has their section: a file written before the console
// existed runs as it did.
var optional = map[string]func(*config.Config) bool{
	"console": func(c *config.Config) bool { return c.Console.Configured() },
}

// configured drops the optional services whose section cfg lacks.
func configured(cfg *config.Config, selected []app.Service) []app.Service {
	var out []app.Service
	for _, s := range selected {
		if has, ok := optional[s.Name()]; ok && !has(cfg) {
			slog.Info("not starting the " + s.Name() + ": the configuration has no " + s.Name() + " section")
			continue
		}
		out = append(out, s)
	}
	return out
}

func runCmd() *cobra.Command {
	var path string
	var only []string
	cmd := &cobra.Command{
		Use:   "run --config FILE [--only ingest,...]",
		Short: "Run all (or some) services in one process",
		Long: "Run Slipway's services in one process. With nats.url empty in the configuration,\n" +
			"an embedded JetStream server runs in the same process.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			selected, err := selectServices(only)
			if err != nil {
				return usageErrorf(cmd, "%w", err)
			}
			cfg, err := config.Load(path, app.Sections(selected...)...)
			if err != nil {
				return err
			}
			if len(only) == 0 {
				selected = configured(cfg, selected)
			}
			return app.RunProcess(cmd.Context(), cfg, selected...)
		},
	}
	cmd.Flags().StringVar(&path, "config", "slipway.yaml", "configuration file")
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these services (comma-separated)")
	return cmd
}

func selectServices(only []string) ([]app.Service, error) {
	all := services()
	if len(only) == 0 {
		return all, nil
	}
	var names []string
	for _, s := range all {
		names = append(names, s.Name())
	}
	var out []app.Service
	for _, name := range only {
		i := slices.Index(names, strings.TrimSpace(name))
		if i < 0 {
			return nil, fmt.Errorf("--only: unknown service %q (one of %s)", name, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}
