package events_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
)

func TestSubjectMapping(t *testing.T) {
	for _, tc := range []struct {
		typ  events.Type
		env  string
		want string
	}{
		{events.TypeImagePushed, "dev", "slipway.image.pushed.dev"},
		{events.TypeApprovalRequested, "prd", "slipway.approval.requested.prd"},
		{events.TypeDeploymentFailed, "vsphere_prd", "slipway.deployment.failed.vsphere_prd"},
		{events.TypeNotificationFailed, "tst", "slipway.notification.failed.tst"},
	} {
		got, err := events.Subject(tc.typ, tc.env)
		if err != nil || got != tc.want {
			t.Errorf("Subject(%s, %s) = %q, %v; want %q", tc.typ, tc.env, got, err, tc.want)
		}
	}
	for _, env := range []string{"", "d.v", "a b", "*", ">"} {
		if _, err := events.Subject(events.TypeImagePushed, env); err == nil {
			t.Errorf("environment %q must be refused as a subject token", env)
		}
	}
	if _, err := events.Subject("com.example.other", "dev"); err == nil {
		t.Error("a foreign type must be refused")
	}
	if got := events.FilterSubject(events.TypeDeploymentSucceeded, ""); got != "slipway.deployment.succeeded.*" {
		t.Errorf("FilterSubject = %q", got)
	}
}

func TestEveryTypeFollowsTheNamingRule(t *testing.T) {
	re := regexp.MustCompile(`^dev\.slipway\.[a-z]+\.[a-z]+\.v1$`)
	seen := map[events.Type]bool{}
	for _, tc := range events.Types {
		if !re.MatchString(string(tc.Type)) {
			t.Errorf("%s does not match dev.slipway.<noun>.<verb>.v1", tc.Type)
		}
		if seen[tc.Type] {
			t.Errorf("%s listed twice", tc.Type)
		}
		seen[tc.Type] = true
		if got, err := events.ParseType(tc.Type.Short()); err != nil || got != tc.Type {
			t.Errorf("ParseType(%q) = %q, %v", tc.Type.Short(), got, err)
		}
	}
	// The 11 types of the contract table, and event.deadlettered,
	// deployment.refused, compliance.violated and action.requested added
	// to it.
	if len(events.Types) != 15 {
		t.Errorf("the contract has 15 event types, Types lists %d", len(events.Types))
	}
}

func TestIDIsDeterministicAndUnambiguous(t *testing.T) {
	a := events.ID("image.pushed", "dev", "r", "apps/web", "1.0")
	if a != events.ID("image.pushed", "dev", "r", "apps/web", "1.0") {
		t.Fatal("same parts must give the same id")
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a) {
		t.Errorf("id %q is not a version 8 UUID", a)
	}
	if events.ID("ab", "c") == events.ID("a", "bc") {
		t.Error("part boundaries must matter")
	}
	c1 := events.CausedID(a, events.TypeDeploymentStarted, "azure-int", "/apps/web")
	c2 := events.CausedID(a, events.TypeDeploymentStarted, "azure-int", "/apps/api")
	if c1 == c2 || c1 == a {
		t.Error("caused ids must differ per effect and from the cause")
	}
}

func TestMessageRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	pushed := events.ImagePushed{
		Environment: "dev", Registry: "r.example:5000", Repository: "apps/web", Tag: "1.4.0",
		Digest: "sha256:" + strings.Repeat("a", 64), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: 708, Actor: "alice", Source: "dev-registry", Format: "distribution", UpstreamID: "u-1",
		PushedAt: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
	}
	e, err := events.New(ctx, events.Spec{
		ID: "id-1", Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry",
		Environment: "dev", Subject: pushed.Ref().String(), CausationID: "cause-1", Data: pushed,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := events.ToMsg(e)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "slipway.image.pushed.dev" {
		t.Errorf("subject = %q", m.Subject)
	}
	wantTP := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for h, want := range map[string]string{
		"Content-Type": "application/cloudevents+json", "Nats-Msg-Id": "id-1", "traceparent": wantTP,
	} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	// Structured mode: the body is the whole event, data inline as JSON.
	var raw map[string]any
	if err := json.Unmarshal(m.Data, &raw); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"specversion": "1.0", "id": "id-1", "type": "dev.slipway.image.pushed.v1", "causationid": "cause-1",
		"traceparent": wantTP, "subject": "r.example:5000/apps/web:1.4.0@sha256:" + strings.Repeat("a", 64),
		"datacontenttype": "application/json", "environment": "dev",
	} {
		if raw[k] != want {
			t.Errorf("%s = %v, want %v", k, raw[k], want)
		}
	}
	if d, ok := raw["data"].(map[string]any); !ok || d["upstreamId"] != "u-1" || d["pushedAt"] != "2026-11-21T10:00:00Z" {
		t.Errorf("data = %v", raw["data"])
	}

	back, err := events.FromMsg(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DataAs[events.ImagePushed](back)
	if err != nil || got != pushed {
		t.Errorf("data round trip: %+v, %v", got, err)
	}
	if events.CausationOf(back) != "cause-1" || events.EnvironmentOf(back) != "dev" {
		t.Error("extensions lost in the round trip")
	}
	if sc := trace.SpanContextFromContext(events.ExtractTrace(context.Background(), back)); sc.TraceID() != tid || sc.SpanID() != sid {
		t.Errorf("trace context not carried: %v", sc)
	}
}

func TestNewRefusesIncompleteEvents(t *testing.T) {
	if _, err := events.New(context.Background(), events.Spec{Type: events.TypeImagePushed, Environment: "dev", Source: "/x"}); err == nil {
		t.Error("an event without id must be refused: ids must be deterministic, never random")
	}
	if _, err := events.New(context.Background(), events.Spec{ID: "x", Type: events.TypeImagePushed, Environment: "", Source: "/x"}); err == nil {
		t.Error("an event without environment has no subject")
	}
	if _, err := events.FromMsg([]byte(`{"specversion":"1.0"}`)); err == nil {
		t.Error("an invalid CloudEvent must not decode")
	}
}

func TestImageReference(t *testing.T) {
	for _, tc := range []struct{ reg, repo, tag, dig, want string }{
		{"r:5000", "apps/web", "1.0", "sha256:ab", "r:5000/apps/web:1.0@sha256:ab"},
		{"r", "apps/web", "", "sha256:ab", "r/apps/web@sha256:ab"},
		{"", "apps/web", "1.0", "", "apps/web:1.0"},
	} {
		if got := events.ImageReference(tc.reg, tc.repo, tc.tag, tc.dig); got != tc.want {
			t.Errorf("ImageReference = %q, want %q", got, tc.want)
		}
	}
}

func TestDeploymentRolloutReadsMarathonFieldsOfOlderEvents(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		d                              events.Deployment
		platform, deployment, revision string
	}{
		{
			name:     "docker",
			d:        events.Deployment{Platform: events.PlatformDocker, DeploymentID: "c1", Revision: "c1"},
			platform: "docker", deployment: "c1", revision: "c1",
		},
		{
			name: "marathon",
			d: events.Deployment{Platform: events.PlatformMarathon, DeploymentID: "d1", Revision: "v1",
				MarathonDeploymentID: "d1", MarathonVersion: "v1"},
			platform: "marathon", deployment: "d1", revision: "v1",
		},
		{
			name:     "published before platforms",
			d:        events.Deployment{MarathonDeploymentID: "d0", MarathonVersion: "v0"},
			platform: "marathon", deployment: "d0", revision: "v0",
		},
		{
			// Slipway resumed after Marathon had finished: no deployment id.
			name:     "published before platforms, version only",
			d:        events.Deployment{MarathonVersion: "v0"},
			platform: "marathon", revision: "v0",
		},
		{name: "nothing known"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, d, r := tc.d.Rollout()
			if p != tc.platform || d != tc.deployment || r != tc.revision {
				t.Errorf("Rollout() = %q, %q, %q; want %q, %q, %q", p, d, r, tc.platform, tc.deployment, tc.revision)
			}
		})
	}
}

func TestValidTokenAcceptsLettersDigitsDashAndUnderscoreOnly(t *testing.T) {
	re := regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	for _, s := range []string{
		"dev", "vsphere_prd", "azure-int", "A", "Z", "a", "z", "0", "9", "_", "-", "-_-", "Prd2",
		"", " ", "d.v", "a b", "*", ">", "dev\n", "\x00", "dev\x00", "é", "dév", "a/b", "a:b", "@", "[", "`", "{",
		"\u0660", "ｄｅｖ", "dev\u200b",
	} {
		if got, want := events.ValidToken(s), re.MatchString(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	}
	// Every byte on its own, and between letters.
	for b := 0; b < 256; b++ {
		for _, s := range []string{string([]byte{byte(b)}), "a" + string([]byte{byte(b)}) + "b"} {
			if got, want := events.ValidToken(s), re.MatchString(s); got != want {
				t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
			}
		}
	}
}
