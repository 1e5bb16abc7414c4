package render

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render/markup"
)

// Statuses of the default rendering.
const (
	StatusPushed             = "pushed"
	StatusPromoted           = "promoted"
	StatusDeploying          = "deploying"
	StatusDeployed           = "deployed"
	StatusRolledBack         = "rolled back"
	StatusSuperseded         = "superseded"
	StatusFailed             = "failed"
	StatusApprovalRequested  = "approval requested"
	StatusApproved           = "approved"
	StatusRejected           = "rejected"
	StatusRefused            = "refused"
	StatusDrift              = "drift"
	StatusViolation          = "compliance violation"
	StatusNotificationFailed = "notification failed"
	StatusDeadLettered       = "dead-lettered"
)

// render is the default rendering of e, whose decoded data is data.
func render(e events.Event, data any) notify.Message {
	var m notify.Message
	env := events.EnvironmentOf(e)
	switch d := data.(type) {
	case events.ImagePushed:
		rel := Release(d.Repository, d.Tag, d.Digest)
		m = notify.Message{
			Title: rel + " pushed to " + d.Environment, Status: StatusPushed, Severity: notify.Info,
			Facts: facts("Image", d.Ref().String(), "Environment", d.Environment, "Size", sizeFact(d.Size),
				"Pushed by", d.Actor, "Webhook", d.Source),
		}
		m.Thread, m.ThreadTitle = thread(d.Repository, d.Tag, d.Digest)
	case events.ApprovalRequested:
		rel := Release(d.To.Repository, d.To.Tag, d.To.Digest)
		title := "approval requested: " + rel + " → " + d.To.Environment
		if !d.ExpiresAt.IsZero() {
			title += " (expires " + When(d.ExpiresAt) + ")"
		}
		m = notify.Message{
			Title: title, Status: StatusApprovalRequested, Severity: notify.Warning,
			Facts: facts("Promotion", d.Promotion, "From", d.From.String(), "To", d.To.String(),
				"Approvers", strings.Join(d.Approvers, ", "), "Expires", whenFact(d.ExpiresAt), "Approval", d.ApprovalID),
			Approval: &notify.Approval{ID: d.ApprovalID, Promotion: d.Promotion, Approvers: d.Approvers},
		}
		m.Thread, m.ThreadTitle = thread(d.To.Repository, d.To.Tag, d.To.Digest)
	case events.ApprovalDecision:
		// The decision's subject is the image it is about.
		img := parseImage(e.Subject())
		rel := Release(img.repository, img.tag, img.digest)
		if img.repository == "" {
			rel = "promotion " + d.Promotion
		}
		verb, status, sev := "approved", StatusApproved, notify.Good
		if events.Type(e.Type()) == events.TypeApprovalRejected {
			verb, status, sev = "rejected", StatusRejected, notify.Warning
		}
		title := rel + " " + verb + " for " + env
		if d.By != "" {
			title += " by " + d.By
		}
		m = notify.Message{
			Title: title, Status: status, Severity: sev,
			Facts: facts("Promotion", d.Promotion, "By", d.By, "Via", d.Via, "Reason", d.Reason, "Approval", d.ApprovalID, "Image", e.Subject()),
		}
		if img.repository != "" {
			m.Thread, m.ThreadTitle = thread(img.repository, img.tag, img.digest)
		}
	case events.ImagePromoted:
		rel := Release(d.To.Repository, d.To.Tag, d.To.Digest)
		m = notify.Message{
			Title:  fmt.Sprintf("%s promoted to %s (%s, %s)", rel, d.To.Environment, plural(d.BlobsCopied, "blob"), Bytes(d.BytesCopied)),
			Status: StatusPromoted, Severity: notify.Good,
			Facts: facts("Promotion", d.Promotion, "From", d.From.String(), "To", d.To.String(),
				"Blobs copied", strconv.Itoa(d.BlobsCopied), "Blobs skipped", strconv.Itoa(d.BlobsSkipped),
				"Bytes copied", Bytes(d.BytesCopied), "Referrers copied", strconv.Itoa(d.ReferrersCopied),
				"Duration", Millis(d.DurationMs), "Verified", verifiedFact(d.Verified), "Verification summary", d.SummaryDigest),
		}
		m.Thread, m.ThreadTitle = thread(d.To.Repository, d.To.Tag, d.To.Digest)
	case events.PromotionFailed:
		rel := Release(d.From.Repository, d.From.Tag, d.From.Digest)
		to := d.To.Environment
		title := "promotion of " + rel + " to " + to + " failed"
		sev := notify.Danger
		if d.Retryable {
			title += "; will retry"
			sev = notify.Warning
		}
		m = notify.Message{
			Title: title, Status: StatusFailed, Severity: sev,
			Facts: facts("Promotion", d.Promotion, "From", d.From.String(), "To", d.To.String(), "Error", d.Error,
				"Attempt", strconv.Itoa(d.Attempt), "Retryable", strconv.FormatBool(d.Retryable)),
		}
		digest := d.From.Digest
		if d.To.Digest != "" {
			digest = d.To.Digest
		}
		m.Thread, m.ThreadTitle = thread(d.From.Repository, d.From.Tag, digest)
	case events.Deployment:
		img := parseImage(d.ToImage)
		if d.Digest != "" {
			img.digest = d.Digest
		}
		rel := Release(img.repository, img.tag, img.digest)
		where := d.Cluster + ": " + d.AppID
		f := []string{"Cluster", d.Cluster, "App", d.AppID, "Environment", d.Environment, "Image", d.ToImage, "Previous image", d.FromImage}
		switch events.Type(e.Type()) {
		case events.TypeDeploymentStarted:
			m = notify.Message{Title: "deploying " + rel + " on " + where, Status: StatusDeploying, Severity: notify.Info}
		case events.TypeDeploymentSucceeded:
			title := rel + " deployed on " + where
			if d.DurationMs > 0 {
				title += " (" + Millis(d.DurationMs) + ")"
			}
			m = notify.Message{Title: title, Status: StatusDeployed, Severity: notify.Good}
			f = append(f, "Duration", Millis(d.DurationMs))
		default:
			reason := d.Reason
			if reason == "" {
				reason = "unknown reason"
			}
			switch {
			case d.Superseded:
				// A newer image replaced this one before it ended: no
				// failure, nothing for anyone to do.
				newer := "a newer image"
				if d.SupersededBy != "" {
					newer = releaseOf(d.SupersededBy)
				}
				m = notify.Message{Title: rel + " on " + where + " superseded by " + newer, Status: StatusSuperseded, Severity: notify.Info}
			case d.RolledBack:
				m = notify.Message{Title: "rolled back on " + where + " — " + reason, Status: StatusRolledBack, Severity: notify.Danger}
			default:
				m = notify.Message{Title: rel + " failed on " + where + " — " + reason, Status: StatusFailed, Severity: notify.Danger}
			}
			f = append(f, "Reason", d.Reason, "Rolled back", strconv.FormatBool(d.RolledBack))
			if d.Superseded {
				f = append(f, "Superseded by", d.SupersededBy)
			}
		}
		platform, deploymentID, _ := d.Rollout()
		f = append(f, "Platform", platform, "Deployment", deploymentID)
		if d.Action != "" {
			// A deployment a person asked for says who.
			m.Title += " (" + d.Action + " by " + orSomeone(d.Actor) + ")"
			f = append(f, "Action", d.Action, "Asked by", d.Actor)
		}
		m.Facts = facts(f...)
		m.Thread, m.ThreadTitle = thread(img.repository, img.tag, img.digest)
	case events.DeploymentRefused:
		by := ""
		if d.Actor != "" {
			by = " by " + d.Actor
		}
		m = notify.Message{
			Title:  "not deployed on " + d.Cluster + ": " + Release(d.Repository, d.Tag, d.Digest) + " was pushed directly" + by + ", not promoted",
			Status: StatusRefused, Severity: notify.Warning,
			Facts: facts("Cluster", d.Cluster, "Image", d.Image, "Pushed by", d.Actor, "Webhook", d.Source,
				"Workloads", strings.Join(d.Workloads, ", "), "Reason", d.Reason),
		}
		m.Thread, m.ThreadTitle = thread(d.Repository, d.Tag, d.Digest)
	case events.DriftDetected:
		title := "drift on " + d.Cluster + ": " + d.AppID
		switch left := d.LeftManagement(); {
		case left != "":
			// Not a change of image: the workload is no longer Slipway's.
			title = d.Cluster + ": " + d.AppID + " " + left
		case d.ActualImage != "":
			title += " runs " + releaseOf(d.ActualImage)
			if d.ExpectedImage != "" {
				title += ", expected " + releaseOf(d.ExpectedImage)
			}
		}
		m = notify.Message{
			Title: title, Status: StatusDrift, Severity: notify.Warning,
			Facts: facts("Cluster", d.Cluster, "App", d.AppID, "Expected image", d.ExpectedImage, "Actual image", d.ActualImage,
				"Reason", d.Reason),
		}
	case events.ComplianceViolated:
		title := "compliance: " + d.Cluster + ": " + d.AppID + " breaks " + d.Rule
		if d.Detail != "" {
			title += " — " + d.Detail
		}
		m = notify.Message{
			Title: title, Status: StatusViolation, Severity: notify.Warning,
			Facts: facts("Cluster", d.Cluster, "App", d.AppID, "Rule", d.Rule, "Checks", d.Kind, "Image", d.Image, "Digest", d.Digest),
		}
	case events.NotificationFailed:
		what := events.Type(d.EventType).Short()
		if what == "" {
			what = "event " + d.EventID
		}
		m = notify.Message{
			Title:  "notification to " + d.Receiver + " failed: " + what,
			Status: StatusNotificationFailed, Severity: notify.Danger,
			Facts: facts("Receiver", d.Receiver, "Event", d.EventType, "Event ID", d.EventID,
				"Attempts", strconv.Itoa(d.Attempts), "Error", d.Error),
		}
	case events.EventDeadLettered:
		m = deadLettered(e, d)
	case events.ActionRequested:
		m = actionRequested(d)
	default:
		title := events.Type(e.Type()).Short()
		if title == "" {
			title = e.Type()
		}
		if e.Subject() != "" {
			title += ": " + e.Subject()
		}
		m = notify.Message{Title: title, Status: title, Severity: notify.Info, Facts: facts("Event", e.Type(), "Subject", e.Subject())}
	}
	if env != "" && !hasFact(m.Facts, "Environment") {
		m.Facts = append(m.Facts, notify.Fact{Name: "Environment", Value: env})
	}
	m.Title = markup.Line(m.Title) // one line, though a reason may have several
	m.Text = text(m)
	m.HTML = html(m)
	return m
}

// actionRequested says who asked for which manual action, through which
// interface, and on what.
func actionRequested(d events.ActionRequested) notify.Message {
	t := d.Target
	var what string
	switch d.Action {
	case events.ActionRollback, events.ActionRedeploy:
		what = t.Cluster + ": " + t.AppID
	case events.ActionPromote:
		what = releaseOf(t.Image) + " to " + t.Environment
	case events.ActionRedrive:
		what = "dead letter " + strconv.FormatUint(t.Sequence, 10)
	}
	title := orSomeone(d.Actor) + " asked for " + d.Action + " of " + what
	if d.Via != "" {
		title += " (" + d.Via + ")"
	}
	var seq string
	if t.Sequence != 0 {
		seq = strconv.FormatUint(t.Sequence, 10)
	}
	return notify.Message{
		Title: title, Status: d.Action + " requested", Severity: notify.Warning,
		Facts: facts("Action", d.Action, "Asked by", d.Actor, "Via", d.Via, "Cluster", t.Cluster, "App", t.AppID,
			"Image", t.Image, "Promotion", t.Promotion, "Dead letter", seq, "Event ID", t.EventID, "Reason", d.Reason),
	}
}

// verifiedFact lists the verification policies an image passed and who
// signed: "signed-by-ci (cosign: sha256:4f1c…), slsa (provenance: …)".
func verifiedFact(vs []events.Verified) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		who := v.Identity
		if v.Builder != "" {
			who += ", built by " + v.Builder
		}
		if v.Source != "" {
			who += " from " + v.Source
		}
		parts = append(parts, v.Policy+" ("+v.Kind+": "+who+")")
	}
	return strings.Join(parts, ", ")
}

// orSomeone is name, or "someone" when it is unknown.
func orSomeone(name string) string {
	if name == "" {
		return "someone"
	}
	return name
}

// deadLettered tells the on-call who gave up on what, why, and the
// commands that show and redrive the dead letter.
func deadLettered(e events.Event, d events.EventDeadLettered) notify.Message {
	what := events.Type(d.EventType).Short()
	if what == "" {
		what = "a message that is not an event"
	}
	title := "dead letter: " + d.Consumer + " gave up on " + what
	if e.Subject() != "" {
		title += " (" + e.Subject() + ")"
	}
	show, redrive := "slipway dlq list", ""
	if d.DLQSequence != 0 {
		seq := strconv.FormatUint(d.DLQSequence, 10)
		show, redrive = "slipway dlq show "+seq, "slipway dlq redrive "+seq+" (once the cause is fixed)"
	}
	return notify.Message{
		Title: title, Status: StatusDeadLettered, Severity: notify.Danger,
		Facts: facts("Consumer", d.Consumer, "Subject", d.Subject, "Event", d.EventType, "Event ID", d.EventID,
			"About", e.Subject(), "Error", d.Error, "Deliveries", strconv.Itoa(d.Deliveries),
			"Show", show, "Redrive", redrive),
	}
}

// facts pairs up names and values, leaving out empty values.
func facts(kv ...string) []notify.Fact {
	var out []notify.Fact
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, notify.Fact{Name: kv[i], Value: kv[i+1]})
		}
	}
	return out
}

func hasFact(fs []notify.Fact, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// text is the plain-text body: the title and one line per fact. Values
// come from events: each stays on its line, so none can forge a line
// ("Approve at: …") of its own.
func text(m notify.Message) string {
	var b strings.Builder
	b.WriteString(m.Title)
	for _, f := range m.Facts {
		b.WriteString("\n")
		b.WriteString(markup.Line(f.Name))
		b.WriteString(": ")
		b.WriteString(markup.Line(f.Value))
	}
	return b.String()
}

var htmlTemplate = template.Must(template.New("html").Parse(`<div style="font-family:sans-serif">
<p style="border-left:4px solid {{.Colour}};padding-left:8px"><strong>{{.M.Title}}</strong></p>
{{- if .M.Facts}}
<table cellpadding="4" style="border-collapse:collapse">
{{- range .M.Facts}}
<tr><th align="left" valign="top">{{.Name}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
</div>`))

// Colours of the severities (Slack's attachment colours).
var colours = map[string]string{
	notify.Good: "#2eb886", notify.Warning: "#daa038", notify.Danger: "#a30200", notify.Info: "#439fe0",
}

func html(m notify.Message) string {
	var b strings.Builder
	c := colours[m.Severity]
	if c == "" {
		c = colours[notify.Info]
	}
	_ = htmlTemplate.Execute(&b, struct {
		M      notify.Message
		Colour string
	}{m, c})
	return b.String()
}

// Release names one release for people: "apps/web 1.4.0", or
// "apps/web@sha256:3f4ab9c1d2e8" without a tag.
func Release(repository, tag, digest string) string {
	switch {
	case repository == "":
		return "image"
	case tag != "":
		return repository + " " + tag
	case digest != "":
		return repository + "@" + ShortDigest(digest)
	}
	return repository
}

// thread returns the thread key of a release (its digest, or
// repository:tag without one) and the thread's title.
func thread(repository, tag, digest string) (string, string) {
	if repository == "" && digest == "" {
		return "", ""
	}
	key := digest
	if key == "" {
		key = repository + ":" + tag
	}
	return key, Release(repository, tag, "")
}

func releaseOf(ref string) string {
	img := parseImage(ref)
	if img.repository == "" {
		return ref
	}
	return Release(img.repository, img.tag, img.digest)
}

// ShortDigest cuts a digest to 12 hex digits.
func ShortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// Bytes renders a byte count in SI units: "512 B", "1.5 kB", "12 MB".
func Bytes(n int64) string {
	if n < 1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		v /= 1000
		if v < 1000 || unit == "TB" {
			if v < 10 {
				return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + unit
			}
			return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
		}
	}
	return ""
}

// Millis renders a duration in milliseconds: "0.4 s", "38 s", "2 min 5 s",
// "1 h 2 min".
func Millis(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < 10*time.Second:
		return strings.TrimSuffix(strconv.FormatFloat(d.Seconds(), 'f', 1, 64), ".0") + " s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Round(time.Second).Seconds())) + " s"
	case d < time.Hour:
		d = d.Round(time.Second)
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return strconv.Itoa(m) + " min"
		}
		return fmt.Sprintf("%d min %d s", m, s)
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	if m == 0 {
		return strconv.Itoa(h) + " h"
	}
	return fmt.Sprintf("%d h %d min", h, m)
}

// When renders a time for people, in UTC: "2025-06-05 09:16 UTC".
func When(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

func whenFact(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return When(t)
}

func sizeFact(n int64) string {
	if n <= 0 {
		return ""
	}
	return Bytes(n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// image is a parsed image reference.
type image struct{ registry, repository, tag, digest string }

// parseImage splits registry/repository[:tag][@digest]; a first path
// segment with a '.' or ':', or "localhost", is the registry (Docker's rule).
func parseImage(s string) image {
	var img image
	name := strings.TrimSpace(s)
	if name == "" {
		return img
	}
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name, img.digest = name[:i], name[i+1:]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, img.tag = name[:i], name[i+1:]
	}
	if i := strings.IndexByte(name, '/'); i >= 0 {
		if first := name[:i]; strings.ContainsAny(first, ".:") || first == "localhost" {
			img.registry, name = first, name[i+1:]
		}
	}
	img.repository = name
	return img
}

// Repository returns the repository of an image reference
// ("registry.example:5000/apps/web:1.4.0@sha256:…" → "apps/web").
func Repository(ref string) string { return parseImage(ref).repository }
