package ingest_test

import (
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/ingest"
)

// sharedConfig is two environments, int and prd, on one registry, and a
// source that routes that registry's pushes between them.
func sharedConfig(reg config.Registry, routes []config.SourceRoute, auth *config.Auth) *config.Config {
	return &config.Config{
		Environments: []config.Environment{{Name: "int", Registry: reg}, {Name: "prd", Registry: reg}},
		Ingest: config.Ingest{Sources: []config.Source{{
			Name: "shared", Format: "distribution", Routes: routes, Auth: auth,
		}}},
	}
}

// integrationThenRelease: the contract's example. An -integration tag is a
// pre-release too, so ">=0.0.0-0" matches it as well; the first route wins.
var integrationThenRelease = []config.SourceRoute{
	{Repositories: []string{"**"}, Tags: config.TagFilter{Regex: ".*-integration"}, Environment: "int"},
	{Repositories: []string{"**"}, Tags: config.TagFilter{Semver: ">=0.0.0-0"}, Environment: "prd"},
}

// One real Distribution registry serves two stages: its notifications go to
// one source, whose routes send each push to the environment its tag names.
// A tag no route matches is ignored and counted, and said once in the log.
func TestRoutesSendEachPushOfOneRegistryToItsEnvironment(t *testing.T) {
	logs := &syncBuffer{}
	r := newRig(t)
	r.log = slog.New(slog.NewTextHandler(logs, nil))
	r.listen(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{
		NotifyURL:     r.srv.URL + "/webhooks/shared",
		NotifyHeaders: map[string][]string{"Authorization": {notifyToken}},
	})
	r.setHandler(t, sharedConfig(config.Registry{Host: reg.Host, Insecure: true}, integrationThenRelease,
		&config.Auth{Header: &config.HeaderAuth{Name: "Authorization", Value: notifyToken}}))
	w := watch(t, r.js)
	x := &e2e{rig: r, reg: reg}

	integration := pushImage(t, x, "team/web", "1.4.2-integration")
	release := pushImage(t, x, "team/web", "1.4.2")
	pushImage(t, x, "team/web", "latest")
	pushImage(t, x, "team/api", "nightly")
	sentinel := pushImage(t, x, "team/sentinel", "9.9.9")
	evs := w.until(t, tagged("team/sentinel", "9.9.9"))

	want := map[string]struct {
		env    string
		pushed pushed
	}{
		"team/web:1.4.2-integration": {"int", integration},
		"team/web:1.4.2":             {"prd", release},
		"team/sentinel:9.9.9":        {"prd", sentinel},
	}
	if len(evs) != len(want) {
		for _, e := range evs {
			t.Logf("event %s", e.Subject())
		}
		t.Fatalf("%d events, want %d (latest and nightly match no route)", len(evs), len(want))
	}
	for _, e := range evs {
		d := pushedData(t, e)
		key := d.Repository + ":" + d.Tag
		wt, ok := want[key]
		if !ok {
			t.Errorf("event for %s, which matches no route", key)
			continue
		}
		if d.Environment != wt.env || d.Registry != reg.Host || d.Digest != wt.pushed.digest.String() {
			t.Errorf("%s: environment %s, registry %s, digest %s; want %s, %s, %s", key, d.Environment, d.Registry, d.Digest, wt.env, reg.Host, wt.pushed.digest)
		}
		if got, want := storedSubject(t, r, e.ID()), events.FilterSubject(events.TypeImagePushed, wt.env); got != want {
			t.Errorf("%s stored on %s, want %s", key, got, want)
		}
	}

	if n := metricValue(t, r.metrics, "slipway_ingest_events_total", map[string]string{"source": "shared", "outcome": "unrouted"}); n != 2 {
		t.Errorf("unrouted counted %v times, want 2 (latest, nightly)", n)
	}
	out := logs.String()
	if n := strings.Count(out, "matches none of the source's routes"); n != 1 {
		t.Errorf("%d log lines about unrouted pushes, want 1 (they are rate-limited):\n%s", n, out)
	}
	for _, want := range []string{"source=shared", "repository=team/web", "tag=latest"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// storedSubject is the subject the stream holds the event with id under.
func storedSubject(t *testing.T, r *rig, id string) string {
	t.Helper()
	for seq := uint64(1); ; seq++ {
		m, err := r.stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("event %s not in the stream: %v", id, err)
		}
		if e, err := events.FromMsg(m.Data); err == nil && e.ID() == id {
			return m.Subject
		}
	}
}

// Routes are tried in order and the first that matches decides: the same
// tag goes to int with the integration route first, to prd with the release
// route first. A push no route matches is in the answer's ignored. The same
// delivery again is the same event (a duplicate), never a second one.
func TestRoutesFirstMatchWins(t *testing.T) {
	body := envelope(distPush("e1", "team/web", "2.0.0-integration"), distPush("e2", "team/web", "latest"))
	for _, c := range []struct {
		name   string
		routes []config.SourceRoute
		want   string
	}{
		{"integration first", integrationThenRelease, "int"},
		{"release first", []config.SourceRoute{integrationThenRelease[1], integrationThenRelease[0]}, "prd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			srv := r.serve(t, sharedConfig(config.Registry{Host: devHost}, c.routes, none()))
			url := srv.URL + "/webhooks/shared"
			if code, got, _ := post(t, url, body, nil); code != http.StatusAccepted || !reflect.DeepEqual(got, counts(1, 0, 1)) {
				t.Fatalf("%d %v, want 202 with one accepted and the unrouted push ignored", code, got)
			}
			if code, got, _ := post(t, url, body, nil); code != http.StatusAccepted || !reflect.DeepEqual(got, counts(0, 1, 1)) {
				t.Fatalf("again: %d %v, want 202 with the push a duplicate", code, got)
			}
			evs := storedEvents(t, r.stream)
			if len(evs) != 1 {
				t.Fatalf("%d events stored, want 1", len(evs))
			}
			if d := pushedData(t, evs[0]); d.Environment != c.want || d.Registry != devHost {
				t.Errorf("routed to %s (registry %s), want %s (%s)", d.Environment, d.Registry, c.want, devHost)
			}
			if n := metricValue(t, r.metrics, "slipway_ingest_events_total", map[string]string{"source": "shared", "outcome": "unrouted"}); n != 2 {
				t.Errorf("unrouted counted %v times, want 2 (latest, twice)", n)
			}
		})
	}
}

// Routes match the repository too, and the foreign-registry check holds each
// push to the registry of the environment it was routed to.
func TestRoutesByRepositoryAndTheirEnvironmentsRegistry(t *testing.T) {
	r := newRig(t)
	cfg := &config.Config{
		Environments: []config.Environment{
			{Name: "int", Registry: config.Registry{Host: devHost}},
			{Name: "prd", Registry: config.Registry{Host: "registry.prd.example"}},
		},
		Ingest: config.Ingest{Sources: []config.Source{{Name: "mixed", Format: "distribution", Auth: none(), Routes: []config.SourceRoute{
			{Repositories: []string{"integration/**"}, Environment: "int"},
			{Repositories: []string{"release/*"}, Tags: config.TagFilter{Semver: ">=1.0.0"}, Environment: "prd"},
		}}}},
	}
	srv := r.serve(t, cfg)
	url := srv.URL + "/webhooks/mixed"

	// Every push of this delivery names devHost (distEvent): int's registry,
	// not prd's.
	body := envelope(distPush("e1", "integration/team/web", "anything"), distPush("e2", "release/web", "0.9.0"), distPush("e3", "release/web", "1.0.0"))
	code, got, _ := post(t, url, body, nil)
	if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(1, 0, 2)) {
		t.Fatalf("%d %v, want 202: integration accepted, 0.9.0 unrouted, 1.0.0 of a foreign registry for prd", code, got)
	}
	evs := storedEvents(t, r.stream)
	if len(evs) != 1 || pushedData(t, evs[0]).Repository != "integration/team/web" || pushedData(t, evs[0]).Environment != "int" {
		t.Fatalf("stored %d events, want only integration/team/web in int", len(evs))
	}
	for outcome, want := range map[string]float64{"unrouted": 1, "foreign_registry": 1} {
		if n := metricValue(t, r.metrics, "slipway_ingest_events_total", map[string]string{"source": "mixed", "outcome": outcome}); n != want {
			t.Errorf("%s counted %v times, want %v", outcome, n, want)
		}
	}
}

// Route problems are named by their key path, at `slipway config check` and
// at the start.
func TestRouteConfigProblemsNameTheKeyPath(t *testing.T) {
	const envs = "environments: [{name: int, registry: {host: r}}, {name: prd, registry: {host: r}}]\n"
	src := func(s string) string {
		return envs + "ingest: {sources: [{name: s, format: distribution, auth: {none: true}, " + s + "}]}"
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"both environment and routes", src("environment: int, routes: [{repositories: ['**'], environment: prd}]"),
			"ingest.sources[0]: set environment or routes, not both"},
		{"neither", src("registry: r"), "ingest.sources[0].environment: is required"},
		{"route without repositories", src("routes: [{repositories: ['**'], environment: int}, {environment: prd}]"),
			"ingest.sources[0].routes[1].repositories: name at least one repository glob"},
		{"route of an unknown environment", src("routes: [{repositories: ['**'], environment: int}, {repositories: ['**'], environment: qa}]"),
			`ingest.sources[0].routes[1].environment: unknown environment "qa"`},
		{"route without environment", src("routes: [{repositories: ['**']}]"),
			"ingest.sources[0].routes[0].environment: is required"},
		{"semver and regex", src("routes: [{repositories: ['**'], tags: {semver: '>=1.0.0', regex: '.*'}, environment: prd}]"),
			"ingest.sources[0].routes[0].tags: set semver or regex, not both"},
		{"bad semver", src("routes: [{repositories: ['**'], tags: {semver: '>=banana'}, environment: prd}]"),
			"ingest.sources[0].routes[0].tags.semver: "},
		{"bad regex", src("routes: [{repositories: ['**'], tags: {regex: '(x'}, environment: prd}]"),
			"ingest.sources[0].routes[0].tags.regex: "},
		{"bad glob", src("routes: [{repositories: ['apps/[x'], environment: prd}]"),
			"ingest.sources[0].routes[0].repositories[0]: \"apps/[x\" is not a valid glob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.doc), noEnv, ingest.New())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}

	// Two environments on one registry host, one source routing between
	// them: a valid configuration.
	if _, err := config.Parse([]byte(src("routes: [{repositories: ['**'], tags: {regex: '.*-integration'}, environment: int}, {repositories: ['**'], environment: prd}]")), noEnv, ingest.New()); err != nil {
		t.Fatalf("routes between two environments sharing a registry: %v", err)
	}
}
