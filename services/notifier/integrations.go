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

// Integrations are the receiver kinds built into this binary, in the order
// messages list them. It is the one place that imports them, so that the
// core and the integrations never import each other's internals; a new
// kind is one line here (notify.Integration says what else it needs).
var Integrations = []notify.Integration{
	slack.Integration,
	webhook.Integration,
	msteams.Integration,
	email.Integration,
	cdevents.Integration,
}

// Constructor builds the receiver of one configured receiver entry. name is
// the entry's name, cfg the whole entry (the integration reads its own kind's
// block, e.g. cfg.Webhook).
type Constructor func(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error)

// DefaultIntegrations returns the constructors of Integrations by kind.
func DefaultIntegrations() map[string]Constructor {
	m := make(map[string]Constructor, len(Integrations))
	for _, in := range Integrations {
		m[in.Kind] = in.New
	}
	return m
}

// Receiver kinds, as in the configuration.
const (
	KindSlack    = slack.Kind
	KindWebhook  = webhook.Kind
	KindMSTeams  = msteams.Kind
	KindEmail    = email.Kind
	KindCDEvents = cdevents.Kind
)

// Kind returns the kind of a configured receiver ("" if none is set).
func Kind(r config.Receiver) string {
	if in, ok := integrationOf(r); ok {
		return in.Kind
	}
	return ""
}

// integrationOf is the integration whose block r sets (the first, when a
// bad entry sets several).
func integrationOf(r config.Receiver) (notify.Integration, bool) {
	for _, in := range Integrations {
		if in.Configured(r) {
			return in, true
		}
	}
	return notify.Integration{}, false
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
