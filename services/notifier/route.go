package notifier

import (
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/render"
)

// router decides which receivers an event goes to, and on which channels.
type router struct {
	routes    []config.Route
	receivers []config.Receiver
}

func newRouter(n config.Notify) *router {
	return &router{routes: n.Routes, receivers: n.Receivers}
}

// attrs are what routes match on.
type attrs struct {
	// short is "deployment.started", full "dev.slipway.deployment.started.v1".
	short, full string
	environment string
	// repository is the image repository the event is about, cluster the
	// cluster; "" when the event has none.
	repository, cluster string
	// label is the app's slipway.notify label (deployment events).
	label string
	// superseded: a deployment.failed that only says a newer image
	// overtook the deployment.
	superseded bool
}

func attrsOf(e events.Event) attrs {
	t := events.Type(e.Type())
	a := attrs{short: t.Short(), full: e.Type(), environment: events.EnvironmentOf(e)}
	switch t {
	case events.TypeImagePushed:
		if d, err := events.DataAs[events.ImagePushed](e); err == nil {
			a.repository = d.Repository
		}
	case events.TypeImagePromoted:
		if d, err := events.DataAs[events.ImagePromoted](e); err == nil {
			a.repository = d.To.Repository
		}
	case events.TypeApprovalRequested:
		if d, err := events.DataAs[events.ApprovalRequested](e); err == nil {
			a.repository = d.To.Repository
		}
	case events.TypePromotionFailed:
		if d, err := events.DataAs[events.PromotionFailed](e); err == nil {
			a.repository = d.To.Repository
			if a.repository == "" {
				a.repository = d.From.Repository
			}
		}
	case events.TypeApprovalGranted, events.TypeApprovalRejected:
		// The decision's subject is the image reference it is about.
		a.repository = render.Repository(e.Subject())
	case events.TypeDeploymentStarted, events.TypeDeploymentSucceeded, events.TypeDeploymentFailed:
		if d, err := events.DataAs[events.Deployment](e); err == nil {
			a.repository = render.Repository(d.ToImage)
			a.cluster = d.Cluster
			a.label = d.Notify
			a.superseded = t == events.TypeDeploymentFailed && d.Superseded
		}
	case events.TypeComplianceViolated:
		if d, err := events.DataAs[events.ComplianceViolated](e); err == nil {
			a.repository = render.Repository(d.Image)
			a.cluster = d.Cluster
		}
	case events.TypeDeploymentRefused:
		if d, err := events.DataAs[events.DeploymentRefused](e); err == nil {
			a.repository = d.Repository
			a.cluster = d.Cluster
		}
	case events.TypeDriftDetected:
		if d, err := events.DataAs[events.DriftDetected](e); err == nil {
			a.repository = render.Repository(d.ExpectedImage)
			if a.repository == "" {
				a.repository = render.Repository(d.ActualImage)
			}
			a.cluster = d.Cluster
		}
	}
	return a
}

// matches tells whether m selects an event: every list that is set must
// have one pattern that matches (lists are ORed, fields ANDed), and
// superseded, when set, must say what the event is.
func matches(m config.Match, a attrs) bool {
	return anyMatch(m.Types, a.short, a.full) &&
		anyMatch(m.Environments, a.environment) &&
		anyMatch(m.Repositories, a.repository) &&
		anyMatch(m.Clusters, a.cluster) &&
		(m.Superseded == nil || *m.Superseded == a.superseded)
}

// anyMatch reports whether one of patterns matches one of values; an empty
// list matches everything, an empty value nothing.
func anyMatch(patterns []string, values ...string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		for _, v := range values {
			if v != "" && doublestar.MatchUnvalidated(p, v) {
				return true
			}
		}
	}
	return false
}

// channels returns, for the receiver named name, the channels e goes to:
// "" for the receiver's own target when a route sends e there, and the
// targets of an app's slipway.notify label the receiver can post to.
// Nothing means the receiver does not get e.
func (r *router) channels(e events.Event, name string) []string {
	a := attrsOf(e)
	var out []string
	add := func(ch string) {
		for _, c := range out {
			if c == ch {
				return
			}
		}
		out = append(out, ch)
	}
	for _, rt := range r.routes {
		if !matches(rt.Match, a) {
			continue
		}
		for _, n := range rt.Receivers {
			if n == name {
				add("")
			}
		}
		if !rt.Continue {
			break
		}
	}
	if a.label != "" {
		var rc *config.Receiver
		for i := range r.receivers {
			if r.receivers[i].Name == name {
				rc = &r.receivers[i]
			}
		}
		if rc != nil && acceptsChannel(*rc) {
			for _, t := range parseLabel(a.label) {
				if t.kind != Kind(*rc) {
					continue
				}
				ch := t.target
				if ch == ownChannel(*rc) {
					ch = ""
				}
				add(ch)
			}
		}
	}
	return out
}

// labelTarget is one entry of a slipway.notify label, "slack:#payments".
type labelTarget struct{ kind, target string }

// parseLabel splits a slipway.notify label: comma-separated kind:target
// entries; malformed entries are skipped.
func parseLabel(v string) []labelTarget {
	var out []labelTarget
	for entry := range strings.SplitSeq(v, ",") {
		kind, target, ok := strings.Cut(strings.TrimSpace(entry), ":")
		kind, target = strings.ToLower(strings.TrimSpace(kind)), strings.TrimSpace(target)
		if !ok || kind == "" || target == "" {
			continue
		}
		out = append(out, labelTarget{kind: kind, target: target})
	}
	return out
}

// validateRoutes checks the patterns of every route.
func validateRoutes(routes []config.Route, p *config.Problems) {
	for i, rt := range routes {
		path := fmt.Sprintf("notify.routes[%d].match", i)
		for j, t := range rt.Match.Types {
			at := fmt.Sprintf("%s.types[%d]", path, j)
			if !doublestar.ValidatePattern(t) {
				p.Add(at, "%q is not a valid glob", t)
				continue
			}
			known := false
			for _, et := range events.Types {
				if doublestar.MatchUnvalidated(t, et.Type.Short()) || doublestar.MatchUnvalidated(t, string(et.Type)) {
					known = true
					break
				}
			}
			if !known {
				p.Add(at, "%q matches no event type (use the short type, e.g. deployment.* or image.pushed, or the full one)", t)
			}
		}
		for _, f := range []struct {
			name string
			list []string
		}{{"environments", rt.Match.Environments}, {"repositories", rt.Match.Repositories}, {"clusters", rt.Match.Clusters}} {
			for j, g := range f.list {
				if !doublestar.ValidatePattern(g) {
					p.Add(fmt.Sprintf("%s.%s[%d]", path, f.name, j), "%q is not a valid glob", g)
				}
			}
		}
	}
}
