// Package render turns a Slipway event into the notify.Message every
// integration starts from: a default text per event type, which a receiver's
// configuration can override with Go templates (see docs/notifications.md).
package render

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"text/template"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Data is what a template is executed with.
type Data struct {
	// Event holds the event's attributes.
	Event Event
	// Data is the event's typed data: events.ImagePushed,
	// events.ApprovalRequested, events.ApprovalDecision, events.ImagePromoted,
	// events.PromotionFailed, events.Deployment, events.DeploymentRefused,
	// events.DriftDetected, events.ComplianceViolated,
	// events.NotificationFailed or events.EventDeadLettered; a map for a type
	// this version does not know.
	Data any
	// Message is the default rendering, to reuse or extend.
	Message notify.Message
}

// Event is the part of a CloudEvent a template sees.
type Event struct {
	ID string
	// Type is the full type, "dev.slipway.image.pushed.v1"; Short is
	// "image.pushed".
	Type, Short string
	Subject     string
	Source      string
	Time        time.Time
	Environment string
	CausationID string
}

// Templates are a receiver's compiled templates; nil fields keep the default.
type Templates struct {
	title, text *template.Template
	html        *htmltemplate.Template
}

// Funcs are the functions templates may call besides Go's built-ins.
var Funcs = map[string]any{
	// bytes renders a byte count: 48213377 → "48 MB".
	"bytes": Bytes,
	// millis renders a duration in milliseconds: 38000 → "38 s".
	"millis": Millis,
	// shortDigest cuts a digest to 12 hex digits: "sha256:3f4ab9c1d2e8".
	"shortDigest": ShortDigest,
	// join joins strings: join .Data.Approvers ", ".
	"join": strings.Join,
}

// Compile parses a receiver's templates. A nil t, or empty fields, keep the
// defaults.
func Compile(t *config.Templates) (*Templates, error) {
	c := &Templates{}
	if t == nil {
		return c, nil
	}
	var err error
	if t.Title != "" {
		if c.title, err = template.New("title").Funcs(Funcs).Parse(t.Title); err != nil {
			return nil, fmt.Errorf("templates.title: %w", err)
		}
	}
	if t.Text != "" {
		if c.text, err = template.New("text").Funcs(Funcs).Parse(t.Text); err != nil {
			return nil, fmt.Errorf("templates.text: %w", err)
		}
	}
	if t.HTML != "" {
		if c.html, err = htmltemplate.New("html").Funcs(Funcs).Parse(t.HTML); err != nil {
			return nil, fmt.Errorf("templates.html: %w", err)
		}
	}
	return c, nil
}

// Render renders e with the defaults, overridden by t where it sets a
// template. A template that fails on this event returns the error together
// with the default rendering.
func Render(e events.Event, t *config.Templates) (notify.Message, error) {
	c, err := Compile(t)
	if err != nil {
		return Default(e), err
	}
	return c.Render(e)
}

// Render renders e; see the package function Render.
func (c *Templates) Render(e events.Event) (notify.Message, error) {
	data, _ := decode(e)
	m := render(e, data)
	if c == nil || (c.title == nil && c.text == nil && c.html == nil) {
		return m, nil
	}
	d := Data{Event: eventInfo(e), Data: data, Message: m}
	out := m
	var buf bytes.Buffer
	if c.title != nil {
		if err := c.title.Execute(&buf, d); err != nil {
			return m, fmt.Errorf("templates.title: %w", err)
		}
		// A title is one line whatever the template's layout.
		out.Title = strings.Join(strings.Fields(buf.String()), " ")
		buf.Reset()
	}
	if c.text != nil {
		if err := c.text.Execute(&buf, d); err != nil {
			return m, fmt.Errorf("templates.text: %w", err)
		}
		out.Text = strings.TrimSpace(buf.String())
		buf.Reset()
	}
	if c.html != nil {
		if err := c.html.Execute(&buf, d); err != nil {
			return m, fmt.Errorf("templates.html: %w", err)
		}
		out.HTML = strings.TrimSpace(buf.String())
	}
	return out, nil
}

// Default is the default rendering of e.
func Default(e events.Event) notify.Message {
	data, _ := decode(e)
	return render(e, data)
}

func eventInfo(e events.Event) Event {
	return Event{
		ID: e.ID(), Type: e.Type(), Short: events.Type(e.Type()).Short(), Subject: e.Subject(),
		Source: e.Source(), Time: e.Time(), Environment: events.EnvironmentOf(e), CausationID: events.CausationOf(e),
	}
}

// decode returns the event's data for templates, and whether it decoded
// into the type's struct.
func decode(e events.Event) (any, bool) {
	var (
		v   any
		err error
	)
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		v, err = events.DataAs[events.ImagePushed](e)
	case events.TypeApprovalRequested:
		v, err = events.DataAs[events.ApprovalRequested](e)
	case events.TypeApprovalGranted, events.TypeApprovalRejected:
		v, err = events.DataAs[events.ApprovalDecision](e)
	case events.TypeImagePromoted:
		v, err = events.DataAs[events.ImagePromoted](e)
	case events.TypePromotionFailed:
		v, err = events.DataAs[events.PromotionFailed](e)
	case events.TypeDeploymentStarted, events.TypeDeploymentSucceeded, events.TypeDeploymentFailed:
		v, err = events.DataAs[events.Deployment](e)
	case events.TypeDeploymentRefused:
		v, err = events.DataAs[events.DeploymentRefused](e)
	case events.TypeDriftDetected:
		v, err = events.DataAs[events.DriftDetected](e)
	case events.TypeComplianceViolated:
		v, err = events.DataAs[events.ComplianceViolated](e)
	case events.TypeNotificationFailed:
		v, err = events.DataAs[events.NotificationFailed](e)
	case events.TypeEventDeadLettered:
		v, err = events.DataAs[events.EventDeadLettered](e)
	case events.TypeActionRequested:
		v, err = events.DataAs[events.ActionRequested](e)
	default:
		err = errUnknown
	}
	if err != nil {
		m, _ := events.DataAs[map[string]any](e)
		return m, false
	}
	return v, true
}

var errUnknown = fmt.Errorf("unknown event type")
