package render_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render"
)

const (
	digest = "sha256:3f4ab9c1d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2"
	devReg = "registry.dev.example:5000"
	prdReg = "registry.prd.example"
)

var at = time.Date(2025, 6, 2, 9, 15, 4, 0, time.UTC)

func ref(env, reg string) events.ImageRef {
	return events.ImageRef{Environment: env, Registry: reg, Repository: "apps/web", Tag: "1.4.0", Digest: digest}
}

func event(t *testing.T, typ events.Type, env, subject string, data any) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID(t.Name(), string(typ)), Type: typ, Source: "/test", Environment: env, Subject: subject, Time: at, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fact(m notify.Message, name string) string {
	for _, f := range m.Facts {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func TestDefaults(t *testing.T) {
	dev, prd := ref("dev", devReg), ref("prd", prdReg)
	deployment := events.Deployment{
		Cluster: "azure-int", Environment: "dev", AppID: "/dev/web",
		FromImage: devReg + "/apps/web:1.3.9", ToImage: devReg + "/apps/web:1.4.0@" + digest, Digest: digest,
		Platform: events.PlatformMarathon, DeploymentID: "d-1", Revision: "2025-06-02T09:16:12.734Z",
		MarathonDeploymentID: "d-1", MarathonVersion: "2025-06-02T09:16:12.734Z", Notify: "slack:#payments",
	}
	container := strings.Repeat("c0ffee", 10) + "c0de"
	onDocker := deployment
	onDocker.Cluster, onDocker.Platform, onDocker.AppID = "vch-int", events.PlatformDocker, "web"
	onDocker.DeploymentID, onDocker.Revision, onDocker.MarathonDeploymentID, onDocker.MarathonVersion = container, container, "", ""
	// As a Slipway from before deployment events named their platform
	// published it: Marathon's fields only.
	legacy := deployment
	legacy.Platform, legacy.DeploymentID, legacy.Revision = "", "", ""
	legacy.MarathonDeploymentID = "d-0"
	succeeded := deployment
	succeeded.DurationMs = 38_000
	rolledBack := deployment
	rolledBack.Cluster, rolledBack.Environment, rolledBack.AppID = "vsphere-prd", "prd", "/prd/web"
	rolledBack.Reason, rolledBack.RolledBack = "not healthy after 10m", true
	failed := rolledBack
	failed.RolledBack = false
	superseded := failed
	superseded.Superseded, superseded.SupersededBy = true, prdReg+"/apps/web:1.4.1@"+digest
	superseded.Reason = "superseded: the app runs " + superseded.SupersededBy + ", deployed since this deployment began"
	noDigest := deployment
	noDigest.Digest, noDigest.ToImage = "", devReg+"/apps/web:1.4.0"

	for _, tc := range []struct {
		name     string
		e        events.Event
		title    string
		status   string
		severity string
		thread   string
		facts    map[string]string
	}{
		{
			name: "pushed",
			e: event(t, events.TypeImagePushed, "dev", dev.String(), events.ImagePushed{
				Environment: "dev", Registry: devReg, Repository: "apps/web", Tag: "1.4.0", Digest: digest,
				Size: 1609, Actor: "ci-bot", Source: "dev-registry", PushedAt: at,
			}),
			title: "apps/web 1.4.0 pushed to dev", status: "pushed", severity: notify.Info, thread: digest,
			facts: map[string]string{"Image": dev.String(), "Pushed by": "ci-bot", "Size": "1.6 kB"},
		},
		{
			name: "pushed without digest",
			e: event(t, events.TypeImagePushed, "dev", "", events.ImagePushed{
				Environment: "dev", Registry: devReg, Repository: "apps/web", Tag: "1.4.0",
			}),
			title: "apps/web 1.4.0 pushed to dev", status: "pushed", severity: notify.Info, thread: "apps/web:1.4.0",
		},
		{
			name: "approval requested",
			e: event(t, events.TypeApprovalRequested, "prd", prd.String(), events.ApprovalRequested{
				ApprovalID: "apr-1", Promotion: "tst-to-prd", From: dev, To: prd, Approvers: []string{"rm", "cto"},
				ExpiresAt: at.Add(72 * time.Hour),
			}),
			title: "approval requested: apps/web 1.4.0 → prd (expires 2025-06-05 09:15 UTC)", status: "approval requested",
			severity: notify.Warning, thread: digest, facts: map[string]string{"Approvers": "rm, cto", "Promotion": "tst-to-prd"},
		},
		{
			name: "approval granted",
			e: event(t, events.TypeApprovalGranted, "prd", prd.String(), events.ApprovalDecision{
				ApprovalID: "apr-1", Promotion: "tst-to-prd", By: "rm", Reason: "ok",
			}),
			title: "apps/web 1.4.0 approved for prd by rm", status: "approved", severity: notify.Good, thread: digest,
			facts: map[string]string{"Reason": "ok"},
		},
		{
			name: "approval rejected",
			e: event(t, events.TypeApprovalRejected, "prd", prd.String(), events.ApprovalDecision{
				ApprovalID: "apr-1", Promotion: "tst-to-prd", By: "rm", Reason: "load test open",
			}),
			title: "apps/web 1.4.0 rejected for prd by rm", status: "rejected", severity: notify.Warning, thread: digest,
		},
		{
			name: "promoted",
			e: event(t, events.TypeImagePromoted, "prd", prd.String(), events.ImagePromoted{
				Promotion: "tst-to-prd", From: dev, To: prd, BlobsCopied: 3, BlobsSkipped: 1, BytesCopied: 12_000_000, DurationMs: 5321,
			}),
			title: "apps/web 1.4.0 promoted to prd (3 blobs, 12 MB)", status: "promoted", severity: notify.Good, thread: digest,
			facts: map[string]string{"Duration": "5.3 s", "Blobs skipped": "1"},
		},
		{
			name: "promoted after verification",
			e: event(t, events.TypeImagePromoted, "prd", prd.String(), events.ImagePromoted{
				Promotion: "tst-to-prd", From: dev, To: prd, BlobsCopied: 3, BytesCopied: 12_000_000, DurationMs: 5321,
				Verified: []events.Verified{
					{Policy: "signed-by-ci", Kind: "cosign", Identity: "sha256:4f1c9e0b7a2d"},
					{Policy: "slsa", Kind: "provenance", Identity: "ci@example.com", Builder: "https://builder.example", Source: "git+https://github.com/acme/web@refs/heads/main"},
				},
				SummaryDigest: "sha256:5e0c",
			}),
			title: "apps/web 1.4.0 promoted to prd (3 blobs, 12 MB)", status: "promoted", severity: notify.Good, thread: digest,
			facts: map[string]string{
				"Verified":             "signed-by-ci (cosign: sha256:4f1c9e0b7a2d), slsa (provenance: ci@example.com, built by https://builder.example from git+https://github.com/acme/web@refs/heads/main)",
				"Verification summary": "sha256:5e0c",
			},
		},
		{
			name: "promotion failed",
			e: event(t, events.TypePromotionFailed, "prd", dev.String(), events.PromotionFailed{
				Promotion: "tst-to-prd", From: dev, To: prd, Error: "503", Attempt: 2, Retryable: true,
			}),
			title: "promotion of apps/web 1.4.0 to prd failed; will retry", status: "failed", severity: notify.Warning, thread: digest,
			facts: map[string]string{"Error": "503", "Attempt": "2"},
		},
		{
			name:  "deployment started",
			e:     event(t, events.TypeDeploymentStarted, "dev", "azure-int:/dev/web", deployment),
			title: "deploying apps/web 1.4.0 on azure-int: /dev/web", status: "deploying", severity: notify.Info, thread: digest,
			facts: map[string]string{"Cluster": "azure-int", "App": "/dev/web", "Platform": "marathon", "Deployment": "d-1"},
		},
		{
			name:  "deployment started on a docker host",
			e:     event(t, events.TypeDeploymentStarted, "dev", "vch-int:web", onDocker),
			title: "deploying apps/web 1.4.0 on vch-int: web", status: "deploying", severity: notify.Info, thread: digest,
			facts: map[string]string{"Cluster": "vch-int", "App": "web", "Platform": "docker", "Deployment": container},
		},
		{
			name:  "deployment started, published before platforms",
			e:     event(t, events.TypeDeploymentStarted, "dev", "azure-int:/dev/web", legacy),
			title: "deploying apps/web 1.4.0 on azure-int: /dev/web", status: "deploying", severity: notify.Info, thread: digest,
			facts: map[string]string{"Platform": "marathon", "Deployment": "d-0"},
		},
		{
			name:  "deployment succeeded",
			e:     event(t, events.TypeDeploymentSucceeded, "dev", "azure-int:/dev/web", succeeded),
			title: "apps/web 1.4.0 deployed on azure-int: /dev/web (38 s)", status: "deployed", severity: notify.Good, thread: digest,
		},
		{
			name:  "deployment succeeded without digest",
			e:     event(t, events.TypeDeploymentSucceeded, "dev", "azure-int:/dev/web", noDigest),
			title: "apps/web 1.4.0 deployed on azure-int: /dev/web", status: "deployed", severity: notify.Good, thread: "apps/web:1.4.0",
		},
		{
			name:  "deployment rolled back",
			e:     event(t, events.TypeDeploymentFailed, "prd", "vsphere-prd:/prd/web", rolledBack),
			title: "rolled back on vsphere-prd: /prd/web — not healthy after 10m", status: "rolled back", severity: notify.Danger, thread: digest,
			facts: map[string]string{"Rolled back": "true"},
		},
		{
			name:  "deployment failed",
			e:     event(t, events.TypeDeploymentFailed, "prd", "vsphere-prd:/prd/web", failed),
			title: "apps/web 1.4.0 failed on vsphere-prd: /prd/web — not healthy after 10m", status: "failed", severity: notify.Danger, thread: digest,
		},
		{
			// No failure: a newer image replaced it. Said calmly, without "failed".
			name:  "deployment superseded",
			e:     event(t, events.TypeDeploymentFailed, "prd", "vsphere-prd:/prd/web", superseded),
			title: "apps/web 1.4.0 on vsphere-prd: /prd/web superseded by apps/web 1.4.1", status: "superseded", severity: notify.Info, thread: digest,
			facts: map[string]string{"Superseded by": prdReg + "/apps/web:1.4.1@" + digest, "Rolled back": "false"},
		},
		{
			name: "drift",
			e: event(t, events.TypeDriftDetected, "prd", "vsphere-prd:/prd/web", events.DriftDetected{
				Cluster: "vsphere-prd", AppID: "/prd/web", ExpectedImage: prdReg + "/apps/web:1.4.0", ActualImage: prdReg + "/apps/web:1.3.9",
			}),
			title: "drift on vsphere-prd: /prd/web runs apps/web 1.3.9, expected apps/web 1.4.0", status: "drift", severity: notify.Warning,
		},
		{
			// Its label taken off, the workload still runs the image Slipway
			// put there: not a change of image, a departure.
			name: "drift: label removed",
			e: event(t, events.TypeDriftDetected, "prd", "vsphere-prd:/prd/web", events.DriftDetected{
				Cluster: "vsphere-prd", AppID: "/prd/web", ExpectedImage: prdReg + "/apps/web:1.4.0", ActualImage: prdReg + "/apps/web:1.4.0",
				Unmanaged: true, Reason: "the slipway.policy label was removed: Slipway no longer manages the workload",
			}),
			title: "vsphere-prd: /prd/web left management: label removed", status: "drift", severity: notify.Warning,
			facts: map[string]string{"Reason": "the slipway.policy label was removed: Slipway no longer manages the workload"},
		},
		{
			name: "drift: workload removed",
			e: event(t, events.TypeDriftDetected, "prd", "vsphere-prd:/prd/web", events.DriftDetected{
				Cluster: "vsphere-prd", AppID: "/prd/web", ExpectedImage: prdReg + "/apps/web:1.4.0", Unmanaged: true,
				Reason: "the workload was removed",
			}),
			title: "vsphere-prd: /prd/web left management: removed", status: "drift", severity: notify.Warning,
			facts: map[string]string{"Expected image": prdReg + "/apps/web:1.4.0", "Actual image": ""},
		},
		{
			name: "compliance violated",
			e: event(t, events.TypeComplianceViolated, "prd", "vsphere-prd:/prd/web", events.ComplianceViolated{
				Cluster: "vsphere-prd", Environment: "prd", AppID: "/prd/web", Rule: "own-registry", Kind: "ownRegistry",
				Image: "docker.io/library/nginx:1.27", Detail: "runs an image of docker.io, not of prd's registry " + prdReg,
			}),
			title:  "compliance: vsphere-prd: /prd/web breaks own-registry — runs an image of docker.io, not of prd's registry " + prdReg,
			status: "compliance violation", severity: notify.Warning,
			facts: map[string]string{"Rule": "own-registry", "Checks": "ownRegistry", "Image": "docker.io/library/nginx:1.27"},
		},
		{
			name: "deployment refused",
			e: event(t, events.TypeDeploymentRefused, "prd", prdReg+"/apps/web:1.4.0@"+digest, events.DeploymentRefused{
				Cluster: "vsphere-prd", Environment: "prd", Image: prdReg + "/apps/web:1.4.0@" + digest, Digest: digest,
				Repository: "apps/web", Tag: "1.4.0", Actor: "jdoe", Source: "prd-registry", Reason: "pushed directly",
				Workloads: []string{"/prd/web", "/prd/web-canary"},
			}),
			title:  "not deployed on vsphere-prd: apps/web 1.4.0 was pushed directly by jdoe, not promoted",
			status: "refused", severity: notify.Warning, thread: digest,
			facts: map[string]string{"Pushed by": "jdoe", "Workloads": "/prd/web, /prd/web-canary", "Webhook": "prd-registry"},
		},
		{
			name: "notification failed",
			e: event(t, events.TypeNotificationFailed, "prd", "", events.NotificationFailed{
				Receiver: "team-slack", EventID: "e-1", EventType: string(events.TypeDeploymentSucceeded), Error: "500", Attempts: 8,
			}),
			title: "notification to team-slack failed: deployment.succeeded", status: "notification failed", severity: notify.Danger,
			facts: map[string]string{"Attempts": "8", "Event ID": "e-1"},
		},
		{
			name: "dead-lettered",
			e: event(t, events.TypeEventDeadLettered, "prd", "vsphere-prd:/prd/web", events.EventDeadLettered{
				Consumer: "deployer-vsphere-prd", Stream: "SLIPWAY", Sequence: 41, Subject: "slipway.image.promoted.prd",
				EventID: "e-1", EventType: string(events.TypeImagePromoted), Error: "marathon said 422", Deliveries: 1,
				DLQSequence: 7, DeadLetteredAt: at,
			}),
			title:  "dead letter: deployer-vsphere-prd gave up on image.promoted (vsphere-prd:/prd/web)",
			status: "dead-lettered", severity: notify.Danger,
			facts: map[string]string{"Consumer": "deployer-vsphere-prd", "Subject": "slipway.image.promoted.prd", "Event ID": "e-1",
				"Error": "marathon said 422", "Show": "slipway dlq show 7", "Redrive": "slipway dlq redrive 7 (once the cause is fixed)"},
		},
		{
			name: "dead-lettered message that is not an event",
			e: event(t, events.TypeEventDeadLettered, "unknown", "", events.EventDeadLettered{
				Consumer: "audit", Stream: "SLIPWAY", Sequence: 42, Subject: "slipway.image.pushed", Error: "not a structured CloudEvent",
				Deliveries: 1, DLQSequence: 8, DeadLetteredAt: at,
			}),
			title:  "dead letter: audit gave up on a message that is not an event",
			status: "dead-lettered", severity: notify.Danger,
			facts: map[string]string{"Subject": "slipway.image.pushed", "Show": "slipway dlq show 8"},
		},
		{
			name: "rollback asked for in the console",
			e: event(t, events.TypeActionRequested, "prd", "vsphere-prd:/prd/web", events.ActionRequested{
				Action: events.ActionRollback, Actor: "maria@example.com", Via: events.ViaConsole,
				Target: events.ActionTarget{Environment: "prd", Cluster: "vsphere-prd", AppID: "/prd/web"},
				Reason: "latency doubled", RequestedAt: at,
			}),
			title:  "maria@example.com asked for rollback of vsphere-prd: /prd/web (console)",
			status: "rollback requested", severity: notify.Warning,
			facts: map[string]string{"Asked by": "maria@example.com", "Via": "console", "Cluster": "vsphere-prd", "App": "/prd/web", "Reason": "latency doubled"},
		},
		{
			name: "redrive asked for on the command line",
			e: event(t, events.TypeActionRequested, "prd", "", events.ActionRequested{
				Action: events.ActionRedrive, Actor: "ops", Via: events.ViaCLI,
				Target: events.ActionTarget{Environment: "prd", Sequence: 7, EventID: "e-1"}, RequestedAt: at,
			}),
			title:  "ops asked for redrive of dead letter 7 (cli)",
			status: "redrive requested", severity: notify.Warning,
			facts: map[string]string{"Dead letter": "7", "Event ID": "e-1"},
		},
		{
			name: "rollback carried out names who asked",
			e: event(t, events.TypeDeploymentSucceeded, "prd", "vsphere-prd:/prd/web", events.Deployment{
				Cluster: "vsphere-prd", Environment: "prd", AppID: "/prd/web", FromImage: prdReg + "/apps/web:1.5.0",
				ToImage: prdReg + "/apps/web:1.4.0@" + digest, Digest: digest, DurationMs: 1200,
				Action: events.ActionRollback, Actor: "maria@example.com",
			}),
			title:  "apps/web 1.4.0 deployed on vsphere-prd: /prd/web (1.2 s) (rollback by maria@example.com)",
			status: "deployed", severity: notify.Good, thread: digest,
			facts: map[string]string{"Action": "rollback", "Asked by": "maria@example.com"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := render.Render(tc.e, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Title != tc.title {
				t.Errorf("title\n got %q\nwant %q", m.Title, tc.title)
			}
			if m.Status != tc.status || m.Severity != tc.severity {
				t.Errorf("status, severity = %q, %q; want %q, %q", m.Status, m.Severity, tc.status, tc.severity)
			}
			if m.Thread != tc.thread {
				t.Errorf("thread = %q, want %q", m.Thread, tc.thread)
			}
			if tc.thread != "" && m.ThreadTitle != "apps/web 1.4.0" {
				t.Errorf("thread title = %q", m.ThreadTitle)
			}
			for k, v := range tc.facts {
				if got := fact(m, k); got != v {
					t.Errorf("fact %s = %q, want %q", k, got, v)
				}
			}
			if fact(m, "Environment") == "" {
				t.Errorf("no Environment fact in %v", m.Facts)
			}
			if !strings.HasPrefix(m.Text, m.Title+"\n") {
				t.Errorf("text does not start with the title: %q", m.Text)
			}
			if !strings.Contains(m.HTML, "<strong>") || !strings.Contains(m.HTML, "<table") {
				t.Errorf("html: %s", m.HTML)
			}
			if (m.Approval != nil) != (events.Type(tc.e.Type()) == events.TypeApprovalRequested) {
				t.Errorf("approval = %+v", m.Approval)
			}
		})
	}
}

func TestApprovalOffered(t *testing.T) {
	prd := ref("prd", prdReg)
	e := event(t, events.TypeApprovalRequested, "prd", prd.String(), events.ApprovalRequested{
		ApprovalID: "apr-1", Promotion: "tst-to-prd", To: prd, Approvers: []string{"rm"},
	})
	m, err := render.Render(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := notify.Approval{ID: "apr-1", Promotion: "tst-to-prd", Approvers: []string{"rm"}}
	if m.Approval == nil || m.Approval.ID != want.ID || m.Approval.Promotion != want.Promotion || strings.Join(m.Approval.Approvers, ",") != "rm" {
		t.Fatalf("approval = %+v, want %+v", m.Approval, want)
	}
	if m.Title != "approval requested: apps/web 1.4.0 → prd" {
		t.Errorf("title without expiry = %q", m.Title)
	}
}

func TestHTMLEscapes(t *testing.T) {
	e := event(t, events.TypeApprovalGranted, "prd", "r.example/apps/web:1.0", events.ApprovalDecision{ApprovalID: "a", By: "rm", Reason: "<script>x</script>"})
	m := render.Default(e)
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Fatalf("reason not escaped: %s", m.HTML)
	}
}

func TestOverride(t *testing.T) {
	e := event(t, events.TypeImagePushed, "dev", "", events.ImagePushed{
		Environment: "dev", Registry: devReg, Repository: "apps/web", Tag: "1.4.0", Digest: digest, Size: 48_213_377, Actor: "ci-bot",
	})
	tmpl := &config.Templates{
		Title: "{{ .Event.Short }} in {{ .Event.Environment }}:\n  {{ .Data.Repository }}:{{ .Data.Tag }} ({{ bytes .Data.Size }})",
		Text:  "{{ .Message.Title }} — by {{ .Data.Actor }}, {{ shortDigest .Data.Digest }}\n",
		HTML:  "<b>{{ .Data.Actor }}</b> {{ .Event.Type }} {{ \"<i>\" }}",
	}
	m, err := render.Render(e, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if want := "image.pushed in dev: apps/web:1.4.0 (48 MB)"; m.Title != want {
		t.Errorf("title = %q, want %q", m.Title, want)
	}
	if want := "apps/web 1.4.0 pushed to dev — by ci-bot, sha256:3f4ab9c1d2e8"; m.Text != want {
		t.Errorf("text = %q, want %q", m.Text, want)
	}
	if want := "<b>ci-bot</b> dev.slipway.image.pushed.v1 &lt;i&gt;"; m.HTML != want {
		t.Errorf("html = %q, want %q", m.HTML, want)
	}
	// What the templates leave alone keeps the default.
	if m.Status != "pushed" || m.Thread != digest || len(m.Facts) == 0 {
		t.Errorf("defaults lost: %+v", m)
	}

	// Only the title overridden.
	m, err = render.Render(e, &config.Templates{Title: "{{ .Data.Repository }}"})
	if err != nil || m.Title != "apps/web" || !strings.HasPrefix(m.Text, "apps/web 1.4.0 pushed to dev") {
		t.Errorf("title only: %q, %q, %v", m.Title, m.Text, err)
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, bad := range []config.Templates{{Title: "{{ .Event.ID"}, {Text: "{{ nosuchfunc }}"}, {HTML: "{{ end }}"}} {
		if _, err := render.Compile(&bad); err == nil {
			t.Errorf("Compile(%+v) accepted a bad template", bad)
		}
	}
	// A template that compiles but does not fit this event's data: the
	// error, and the default message to fall back on.
	e := event(t, events.TypeDriftDetected, "prd", "", events.DriftDetected{Cluster: "c", AppID: "/a"})
	m, err := render.Render(e, &config.Templates{Title: "{{ .Data.Repository }}"})
	if err == nil {
		t.Fatal("no error for a field the data does not have")
	}
	if m.Title != "drift on c: /a" {
		t.Errorf("fallback title = %q", m.Title)
	}
}

func TestUnknownType(t *testing.T) {
	e := event(t, events.Type("dev.slipway.thing.happened.v1"), "dev", "x", map[string]any{"a": 1})
	m, err := render.Render(e, &config.Templates{Title: "{{ .Data.a }} {{ .Event.Short }}"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Title != "1 thing.happened" {
		t.Errorf("title = %q", m.Title)
	}
	if d := render.Default(e); d.Title != "thing.happened: x" {
		t.Errorf("default title = %q", d.Title)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{render.Bytes(512), "512 B"}, {render.Bytes(1500), "1.5 kB"}, {render.Bytes(12_000_000), "12 MB"},
		{render.Bytes(48_213_377), "48 MB"}, {render.Bytes(3_200_000_000), "3.2 GB"},
		{render.Millis(400), "0.4 s"}, {render.Millis(38_000), "38 s"}, {render.Millis(125_000), "2 min 5 s"},
		{render.Millis(600_000), "10 min"}, {render.Millis(3_720_000), "1 h 2 min"},
		{render.Release("apps/web", "", digest), "apps/web@sha256:3f4ab9c1d2e8"},
		{render.Repository("registry.example:5000/apps/web:1.4.0@" + digest), "apps/web"},
		{render.Repository("localhost/web"), "web"}, {render.Repository("apps/web"), "apps/web"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
