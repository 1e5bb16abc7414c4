package ingest

import "github.com/slipway-cd/slipway/pkg/platform/config"

// Validate checks the ingest part of cfg beyond what the loader knows
// (webhook formats, authenticators, one token per approver), as `slipway
// config check` does before anything runs.
func Validate(cfg *config.Config) error {
	if _, err := compileSources(cfg); err != nil {
		return err
	}
	return checkApprovers(cfg)
}
