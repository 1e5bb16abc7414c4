package ingest

import "github.com/slipway-cd/slipway/pkg/platform/config"

// Validate checks the ingest part of cfg beyond what the loader knows
// (webhook formats, authenticators), as `slipway config check` does before
// anything runs.
func Validate(cfg *config.Config) error {
	_, err := compileSources(cfg)
	return err
}
