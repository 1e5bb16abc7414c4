package webhook

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Integration is the webhook kind in the notifier's table.
var Integration = notify.Integration{
	Kind:        Kind,
	Configured:  func(r config.Receiver) bool { return r.Webhook != nil },
	CheckConfig: CheckConfig,
	New:         New,
}

// CheckConfig checks a receiver's webhook block.
func CheckConfig(r config.Receiver, path string, p *config.Problems) {
	config.CheckHTTPURL(p, path+".url", r.Webhook.URL, config.RedactURL)
}
