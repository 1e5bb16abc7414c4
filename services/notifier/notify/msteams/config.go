package msteams

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Integration is the msteams kind in the notifier's table.
var Integration = notify.Integration{
	Kind:        Kind,
	Configured:  func(r config.Receiver) bool { return r.MSTeams != nil },
	CheckConfig: CheckConfig,
	New:         New,
}

// CheckConfig checks a receiver's msteams block. The Workflows webhook URL
// is a secret as a whole (its sig= query).
func CheckConfig(r config.Receiver, path string, p *config.Problems) {
	config.CheckHTTPURL(p, path+".webhookUrl", r.MSTeams.WebhookURL, config.RedactSecretURL)
}
