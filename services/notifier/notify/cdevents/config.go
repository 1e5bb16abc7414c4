package cdevents

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Integration is the cdevents kind in the notifier's table.
var Integration = notify.Integration{
	Kind:        Kind,
	Configured:  func(r config.Receiver) bool { return r.CDEvents != nil },
	CheckConfig: CheckConfig,
	New:         New,
}

// CheckConfig checks a receiver's cdevents block.
func CheckConfig(r config.Receiver, path string, p *config.Problems) {
	config.CheckHTTPURL(p, path+".url", r.CDEvents.URL, config.RedactURL)
}
