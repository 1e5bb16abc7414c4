package notifier

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/cdevents"
	"github.com/slipway-cd/slipway/services/notifier/notify/email"
	"github.com/slipway-cd/slipway/services/notifier/notify/msteams"
	"github.com/slipway-cd/slipway/services/notifier/notify/slack"
	"github.com/slipway-cd/slipway/services/notifier/notify/webhook"
)

// Constructor builds the receiver of one configured receiver entry. name is
// the entry's name, cfg the whole entry (the integration reads its own kind's
// block, e.g. cfg.Webhook).
type Constructor func(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error)

// DefaultIntegrations returns the integrations built into this binary, by
// receiver kind. It is the one place that imports them, so that the core and
// the integrations never import each other's internals; a new integration
// is one line here.
func DefaultIntegrations() map[string]Constructor {
	return map[string]Constructor{
		KindSlack:    slack.New,
		KindWebhook:  webhook.New,
		KindMSTeams:  msteams.New,
		KindEmail:    email.New,
		KindCDEvents: cdevents.New,
	}
}

// Receiver kinds, as in the configuration.
const (
	KindSlack    = "slack"
	KindWebhook  = "webhook"
	KindMSTeams  = "msteams"
	KindEmail    = "email"
	KindCDEvents = "cdevents"
)

// Kind returns the kind of a configured receiver ("" if none is set).
func Kind(r config.Receiver) string {
	switch {
	case r.Slack != nil:
		return KindSlack
	case r.Webhook != nil:
		return KindWebhook
	case r.MSTeams != nil:
		return KindMSTeams
	case r.Email != nil:
		return KindEmail
	case r.CDEvents != nil:
		return KindCDEvents
	}
	return ""
}

// acceptsChannel reports whether a receiver can post to another target than
// its own, named by an app's slipway.notify label: Slack receivers with a
// bot token (an incoming webhook is bound to its channel).
func acceptsChannel(r config.Receiver) bool {
	return r.Slack != nil && r.Slack.Token != ""
}

// ownChannel is the target a receiver posts to without a label.
func ownChannel(r config.Receiver) string {
	if r.Slack != nil {
		return r.Slack.Channel
	}
	return ""
}
