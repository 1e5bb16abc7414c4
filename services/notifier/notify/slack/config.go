package slack

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Integration is the slack kind in the notifier's table.
var Integration = notify.Integration{
	Kind:        Kind,
	Configured:  func(r config.Receiver) bool { return r.Slack != nil },
	CheckConfig: CheckConfig,
	New:         New,
}

// CheckConfig checks a receiver's slack block: an incoming webhook, or a
// bot token with its channel. The webhook URL is a secret as a whole.
func CheckConfig(r config.Receiver, path string, p *config.Problems) {
	sl := r.Slack
	switch {
	case sl.WebhookURL != "" && sl.Token != "":
		p.Add(path, "set webhookUrl or token, not both")
	case sl.WebhookURL != "":
		config.CheckHTTPURL(p, path+".webhookUrl", sl.WebhookURL, config.RedactSecretURL)
	case sl.Token != "":
		if sl.Channel == "" {
			p.Add(path+".channel", "is required with token")
		}
		if sl.APIURL != "" {
			config.CheckHTTPURL(p, path+".apiUrl", sl.APIURL, config.RedactURL)
		}
	default:
		p.Add(path, "set webhookUrl or token (with channel)")
	}
}
