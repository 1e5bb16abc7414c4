package notifier

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

const digest = "sha256:3f4ab9c1d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2"

func ev(t *testing.T, typ events.Type, env, subject string, data any) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID(t.Name(), string(typ), env, subject), Type: typ, Source: "/test", Environment: env, Subject: subject, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pushed(t *testing.T, env, repo string) events.Event {
	return ev(t, events.TypeImagePushed, env, "", events.ImagePushed{Environment: env, Registry: "r.example", Repository: repo, Tag: "1.0", Digest: digest})
}

func deployed(t *testing.T, typ events.Type, env, cluster, image, label string) events.Event {
	return ev(t, typ, env, cluster+":/web", events.Deployment{Cluster: cluster, Environment: env, AppID: "/web", ToImage: image, Digest: digest, Notify: label})
}

// supersededBy is a deployment.failed that says newer overtook it.
func supersededBy(t *testing.T, image, newer string) events.Event {
	return ev(t, events.TypeDeploymentFailed, "prd", "vsphere-prd:/web", events.Deployment{
		Cluster: "vsphere-prd", Environment: "prd", AppID: "/web", ToImage: image, Digest: digest, Superseded: true, SupersededBy: newer,
	})
}

// routed returns receiver → channels for e, "-" standing for the receiver's
// own target.
func routed(r *router, e events.Event) string {
	var out []string
	for _, rc := range r.receivers {
		chs := r.channels(e, rc.Name)
		if len(chs) == 0 {
			continue
		}
		for i, c := range chs {
			if c == "" {
				chs[i] = "-"
			}
		}
		out = append(out, rc.Name+"="+strings.Join(chs, "|"))
	}
	return strings.Join(out, " ")
}

func receivers() []config.Receiver {
	return []config.Receiver{
		{Name: "hook", Webhook: &config.WebhookReceiver{URL: "http://h"}},
		{Name: "audit", Webhook: &config.WebhookReceiver{URL: "http://a"}},
		{Name: "bot", Slack: &config.SlackReceiver{Token: "xoxb", Channel: "#deploys"}},
		{Name: "bot2", Slack: &config.SlackReceiver{Token: "xoxb", Channel: "#other"}},
		{Name: "incoming", Slack: &config.SlackReceiver{WebhookURL: "https://hooks.slack.example/x"}},
		{Name: "teams", MSTeams: &config.MSTeamsReceiver{WebhookURL: "https://t"}},
	}
}

func TestRouting(t *testing.T) {
	type r = config.Route
	type m = config.Match
	const img = "registry.prd.example:443/apps/web:1.4.0@" + digest
	no, yes := false, true
	failures := m{Types: []string{"*.failed"}, Superseded: &no}
	for _, tc := range []struct {
		name   string
		routes []config.Route
		e      events.Event
		want   string
	}{
		{"empty match takes everything", []r{{Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"no route", nil, pushed(t, "dev", "apps/web"), ""},
		{"short type glob", []r{{Match: m{Types: []string{"image.*"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"short type exact", []r{{Match: m{Types: []string{"image.pushed"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"full type", []r{{Match: m{Types: []string{"dev.slipway.image.pushed.v1"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"full type glob", []r{{Match: m{Types: []string{"dev.slipway.*.pushed.*"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"type mismatch", []r{{Match: m{Types: []string{"deployment.*"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), ""},
		{"types are ORed", []r{{Match: m{Types: []string{"deployment.*", "image.pushed"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"environment", []r{{Match: m{Environments: []string{"prd"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), ""},
		{"environments are ORed", []r{{Match: m{Environments: []string{"prd", "dev"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"fields are ANDed", []r{{Match: m{Types: []string{"image.pushed"}, Environments: []string{"prd"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), ""},
		{"repository glob", []r{{Match: m{Repositories: []string{"apps/**"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/team/web"), "hook=-"},
		{"repository single star", []r{{Match: m{Repositories: []string{"apps/*"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/team/web"), ""},
		{"repository of a deployment", []r{{Match: m{Repositories: []string{"apps/web"}}, Receivers: []string{"hook"}}},
			deployed(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", img, ""), "hook=-"},
		{"repository of a promotion", []r{{Match: m{Repositories: []string{"apps/web"}}, Receivers: []string{"hook"}}},
			ev(t, events.TypeImagePromoted, "prd", "", events.ImagePromoted{To: events.ImageRef{Repository: "apps/web"}, From: events.ImageRef{Repository: "dev/web"}}), "hook=-"},
		{"repository of an approval request", []r{{Match: m{Repositories: []string{"apps/web"}}, Receivers: []string{"hook"}}},
			ev(t, events.TypeApprovalRequested, "prd", "", events.ApprovalRequested{To: events.ImageRef{Repository: "apps/web"}}), "hook=-"},
		{"repository of a decision (its subject)", []r{{Match: m{Repositories: []string{"apps/web"}}, Receivers: []string{"hook"}}},
			ev(t, events.TypeApprovalGranted, "prd", img, events.ApprovalDecision{ApprovalID: "a"}), "hook=-"},
		{"event without repository", []r{{Match: m{Repositories: []string{"**"}}, Receivers: []string{"hook"}}},
			ev(t, events.TypeNotificationFailed, "prd", "", events.NotificationFailed{Receiver: "x"}), ""},
		{"cluster", []r{{Match: m{Clusters: []string{"vsphere-*"}}, Receivers: []string{"hook"}}},
			deployed(t, events.TypeDeploymentFailed, "prd", "vsphere-prd", img, ""), "hook=-"},
		{"cluster of a drift", []r{{Match: m{Clusters: []string{"vsphere-prd"}}, Receivers: []string{"hook"}}},
			ev(t, events.TypeDriftDetected, "prd", "", events.DriftDetected{Cluster: "vsphere-prd", AppID: "/web"}), "hook=-"},
		{"a refused direct push by type, cluster and repository", []r{{Match: m{Types: []string{"deployment.refused"}, Clusters: []string{"vsphere-*"}, Repositories: []string{"apps/**"}}, Receivers: []string{"hook"}}},
			ev(t, events.TypeDeploymentRefused, "prd", img, events.DeploymentRefused{Cluster: "vsphere-prd", Repository: "apps/web", Image: img, Actor: "jdoe"}), "hook=-"},
		{"cluster mismatch", []r{{Match: m{Clusters: []string{"azure-*"}}, Receivers: []string{"hook"}}},
			deployed(t, events.TypeDeploymentFailed, "prd", "vsphere-prd", img, ""), ""},
		{"no cluster on a push", []r{{Match: m{Clusters: []string{"*"}}, Receivers: []string{"hook"}}}, pushed(t, "dev", "apps/web"), ""},
		{"superseded: false keeps a superseded deployment out", []r{{Match: failures, Receivers: []string{"hook"}}},
			supersededBy(t, img, "registry.prd.example:443/apps/web:1.4.1"), ""},
		{"superseded: false takes a deployment that failed", []r{{Match: failures, Receivers: []string{"hook"}}},
			deployed(t, events.TypeDeploymentFailed, "prd", "vsphere-prd", img, ""), "hook=-"},
		{"superseded: false takes other failures", []r{{Match: failures, Receivers: []string{"hook"}}},
			ev(t, events.TypePromotionFailed, "prd", "", events.PromotionFailed{Promotion: "p"}), "hook=-"},
		{"superseded: true takes only superseded deployments", []r{
			{Match: m{Superseded: &yes}, Receivers: []string{"hook"}},
			{Receivers: []string{"audit"}},
		}, deployed(t, events.TypeDeploymentFailed, "prd", "vsphere-prd", img, ""), "audit=-"},
		{"superseded: true", []r{{Match: m{Superseded: &yes}, Receivers: []string{"hook"}}},
			supersededBy(t, img, "registry.prd.example:443/apps/web:1.4.1"), "hook=-"},
		{"a superseded deployment goes where deployment.failed goes without superseded", []r{{Match: m{Types: []string{"deployment.failed"}}, Receivers: []string{"hook"}}},
			supersededBy(t, img, "registry.prd.example:443/apps/web:1.4.1"), "hook=-"},
		{"first match wins", []r{
			{Match: m{Types: []string{"image.*"}}, Receivers: []string{"hook"}},
			{Receivers: []string{"audit"}},
		}, pushed(t, "dev", "apps/web"), "hook=-"},
		{"a route that does not match does not stop", []r{
			{Match: m{Types: []string{"deployment.*"}}, Receivers: []string{"hook"}},
			{Receivers: []string{"audit"}},
		}, pushed(t, "dev", "apps/web"), "audit=-"},
		{"continue", []r{
			{Match: m{Types: []string{"image.*"}}, Receivers: []string{"hook"}, Continue: true},
			{Match: m{Environments: []string{"dev"}}, Receivers: []string{"audit", "hook"}},
			{Receivers: []string{"teams"}},
		}, pushed(t, "dev", "apps/web"), "hook=- audit=-"},
		{"label to a bot receiver, besides routes", []r{{Receivers: []string{"hook"}}},
			deployed(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", img, "slack:#payments"), "hook=- bot=#payments bot2=#payments"},
		{"label with several targets", nil,
			deployed(t, events.TypeDeploymentStarted, "prd", "vsphere-prd", img, " slack:#payments, slack:#ops ,msteams:x, bogus, slack:"), "bot=#payments|#ops bot2=#payments|#ops"},
		{"label and route to the same bot", []r{{Receivers: []string{"bot"}}},
			deployed(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", img, "slack:#payments"), "bot=-|#payments bot2=#payments"},
		{"label naming the bot's own channel", []r{{Receivers: []string{"bot"}}},
			deployed(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", img, "slack:#deploys"), "bot=- bot2=#deploys"},
		{"label of another kind", nil,
			deployed(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", img, "email:team@example.com"), ""},
		{"label kind is case-insensitive", nil,
			deployed(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd", img, "Slack:#payments"), "bot=#payments bot2=#payments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(config.Notify{Receivers: receivers(), Routes: tc.routes})
			if got := routed(r, tc.e); got != tc.want {
				t.Errorf("routed to %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := &config.Config{Notify: config.Notify{
		Receivers: []config.Receiver{{Name: "hook", Webhook: &config.WebhookReceiver{URL: "http://h"},
			Templates: &config.Templates{Title: "{{ .Event.Short }}", HTML: "<b>{{ .Message.Title }}</b>"}}},
		Routes: []config.Route{{Match: config.Match{Types: []string{"deployment.*", "dev.slipway.image.pushed.v1", "*"},
			Repositories: []string{"apps/**"}, Clusters: []string{"vsphere-*"}}, Receivers: []string{"hook"}}},
	}}
	var p config.Problems
	New().CheckConfig(good, &p)
	if err := p.Err(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*config.Notify)
		want string
	}{
		{"bad type glob", func(n *config.Notify) { n.Routes[0].Match.Types = []string{"deployment.["} }, "notify.routes[0].match.types[0]"},
		{"type matching nothing", func(n *config.Notify) { n.Routes[0].Match.Types = []string{"deployments.*"} }, "matches no event type"},
		{"bad repository glob", func(n *config.Notify) { n.Routes[0].Match.Repositories = []string{"apps/[a"} }, "notify.routes[0].match.repositories[0]"},
		{"bad title template", func(n *config.Notify) { n.Receivers[0].Templates = &config.Templates{Title: "{{ .Event"} }, "templates.title"},
		{"bad html template", func(n *config.Notify) { n.Receivers[0].Templates = &config.Templates{HTML: "{{ if }}"} }, "templates.html"},
		{"receiver name not a token", func(n *config.Notify) { n.Receivers[0].Name = "team slack" }, "notify.receivers[0].name"},
		{"kind without integration", func(n *config.Notify) {
			n.Receivers = append(n.Receivers, config.Receiver{Name: "x", CDEvents: &config.CDEventsReceiver{URL: "http://c"}})
		}, "notify.receivers[1].cdevents"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Notify: config.Notify{
				Receivers: slices.Clone(good.Notify.Receivers),
				Routes:    []config.Route{{Match: config.Match{Types: []string{"deployment.*"}}, Receivers: []string{"hook"}}},
			}}
			tc.edit(&cfg.Notify)
			var p config.Problems
			checkConfig(cfg, map[string]Constructor{KindWebhook: DefaultIntegrations()[KindWebhook]}, &p)
			if len(p) == 0 || !strings.Contains(p.Error(), tc.want) {
				t.Fatalf("problems = %v, want one naming %q", p, tc.want)
			}
		})
	}
}

func TestSentKey(t *testing.T) {
	a, b := SentKey("hook", "e1", ""), SentKey("hook", "e1", "#x")
	if a == b || SentKey("hook", "e1", "") != a || SentKey("other", "e1", "") == a {
		t.Fatal("keys do not tell receivers, events and channels apart")
	}
	if !strings.HasPrefix(a, "hook.") {
		t.Fatalf("key %q", a)
	}
}

func TestRateLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rc    config.Receiver
		limit float64
		burst int
	}{
		{"slack default", config.Receiver{Slack: &config.SlackReceiver{Token: "x", Channel: "#c"}}, 1, 3},
		{"webhook default", config.Receiver{Webhook: &config.WebhookReceiver{URL: "http://h"}}, 5, 10},
		{"configured", config.Receiver{Webhook: &config.WebhookReceiver{URL: "http://h"}, RateLimit: 0.5, Burst: 2}, 0.5, 2},
		{"rate only", config.Receiver{Slack: &config.SlackReceiver{Token: "x"}, RateLimit: 20}, 20, 3},
	} {
		l := limiter(tc.rc, Kind(tc.rc))
		if float64(l.Limit()) != tc.limit || l.Burst() != tc.burst {
			t.Errorf("%s: %v/s burst %d, want %v/s burst %d", tc.name, l.Limit(), l.Burst(), tc.limit, tc.burst)
		}
	}
}
