package email

import (
	"net"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Integration is the email kind in the notifier's table.
var Integration = notify.Integration{
	Kind:        Kind,
	Configured:  func(r config.Receiver) bool { return r.Email != nil },
	CheckConfig: CheckConfig,
	New:         New,
}

// CheckConfig checks a receiver's email block: the relay, the sender and
// the recipients, and how to speak TLS to the relay.
func CheckConfig(r config.Receiver, path string, p *config.Problems) {
	em := r.Email
	if _, _, err := net.SplitHostPort(em.SMTP); err != nil {
		p.Add(path+".smtp", "%q must be host:port", config.RedactURL(em.SMTP))
	}
	if em.From == "" {
		p.Add(path+".from", "is required")
	}
	if len(em.To) == 0 {
		p.Add(path+".to", "is required")
	}
	switch em.TLS {
	case "", "starttls", "tls", "none":
	default:
		p.Add(path+".tls", "%q must be starttls, tls or none", em.TLS)
	}
}
