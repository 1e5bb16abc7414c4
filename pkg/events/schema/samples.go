package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// samples tells one release's story, one event of every type. They are the
// examples in events.md and asyncapi.yaml, and the test validates them
// against the schemas, so they set every field some event of their data type
// can carry.
func samples() []events.Spec {
	const (
		digest   = "sha256:3f4ab9c1d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2"
		previous = "sha256:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"
		repo     = "apps/payments"
		devReg   = "registry.dev.example:5000"
		tstReg   = "registry.tst.example"
		prdReg   = "registry.prd.example"
	)
	at := time.Date(2025, 6, 2, 9, 15, 4, 0, time.UTC)
	ref := func(env, registry string) events.ImageRef {
		return events.ImageRef{Environment: env, Registry: registry, Repository: repo, Tag: "1.4.2", Digest: digest}
	}
	dev, tst, prd := ref("dev", devReg), ref("tst", tstReg), ref("prd", prdReg)

	pushed := events.ImagePushed{
		Environment: "dev", Registry: devReg, Repository: repo, Tag: "1.4.2", Digest: digest,
		MediaType: "application/vnd.oci.image.index.v1+json", Size: 1609, Actor: "ci-bot",
		Source: "dev-registry", Format: "distribution",
		UpstreamID: "b5c2e9a4-7d1f-4c3e-9a8b-2f6d0e4c1a7b", PushedAt: at,
	}
	// As ingest derives it: the image, content-addressed.
	pushedID := events.ID("image.pushed", pushed.Environment, pushed.Registry, pushed.Repository, pushed.Tag, pushed.Digest)

	promotedTst := events.ImagePromoted{
		Promotion: "dev-to-tst", From: dev, To: tst,
		BlobsCopied: 4, BlobsSkipped: 2, BytesCopied: 48213377, ReferrersCopied: 2, DurationMs: 5321,
	}
	promotedTstID := events.CausedID(pushedID, events.TypeImagePromoted, "dev-to-tst")

	deployment := events.Deployment{
		Cluster: "vsphere-tst", Environment: "tst", Platform: events.PlatformMarathon, AppID: "/payments/api",
		FromImage: tstReg + "/" + repo + ":1.4.1@" + previous, ToImage: tst.String(), Digest: digest,
		Notify: "slack:#payments",
	}
	deployment.DeploymentID, deployment.Revision = "5f0c2d7e-8b1a-4e6f-9c3d-2a7b8e1f4c6d", "2025-06-02T09:16:12.734Z"
	deployment.MarathonDeploymentID, deployment.MarathonVersion = deployment.DeploymentID, deployment.Revision
	deployID := events.CausedID(promotedTstID, events.TypeDeploymentStarted, "vsphere-tst", "/payments/api")
	succeeded := deployment
	succeeded.DurationMs = 48210

	approvalID := events.CausedID(promotedTstID, events.TypeApprovalRequested, "tst-to-prd")
	failed := deployment
	failed.Cluster, failed.Environment = "vsphere-prd", "prd"
	failed.FromImage, failed.ToImage = prdReg+"/"+repo+":1.4.1@"+previous, prd.String()
	failed.DeploymentID, failed.Revision = "c8e1b4f2-3a6d-4f9e-8b2c-7d5a1e0f3b9c", "2025-06-02T11:02:44.108Z"
	failed.MarathonDeploymentID, failed.MarathonVersion = failed.DeploymentID, failed.Revision
	failed.Reason = "tasks did not become healthy within 10m0s"
	failed.RolledBack = true
	failedID := events.CausedID(approvalID, events.TypeDeploymentFailed, "vsphere-prd", "/payments/api")

	return []events.Spec{
		{
			ID: pushedID, Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry",
			Environment: "dev", Subject: pushed.Ref().String(), Time: at, Data: pushed,
		},
		{
			ID: approvalID, Type: events.TypeApprovalRequested, Source: "/slipway/promoter",
			Environment: "prd", CausationID: promotedTstID, Time: at.Add(62 * time.Second),
			Data: events.ApprovalRequested{
				ApprovalID: "apr-7c1e9d42", Promotion: "tst-to-prd", From: tst, To: prd,
				Approvers: []string{"release-manager"}, ExpiresAt: at.Add(72 * time.Hour),
			},
		},
		{
			ID: events.CausedID(approvalID, events.TypeApprovalGranted), Type: events.TypeApprovalGranted,
			Source: "/slipway/ingest/approvals", Environment: "prd", CausationID: approvalID, Time: at.Add(95 * time.Minute),
			Data: events.ApprovalDecision{ApprovalID: "apr-7c1e9d42", Promotion: "tst-to-prd", By: "release-manager", Reason: "signed off in the release meeting", Via: events.ViaConsole},
		},
		{
			ID: events.CausedID(approvalID, events.TypeApprovalRejected), Type: events.TypeApprovalRejected,
			Source: "/slipway/ingest/approvals", Environment: "prd", CausationID: approvalID, Time: at.Add(95 * time.Minute),
			Data: events.ApprovalDecision{ApprovalID: "apr-7c1e9d42", Promotion: "tst-to-prd", By: "release-manager", Reason: "load test still open", Via: events.ViaAPI},
		},
		{
			ID: promotedTstID, Type: events.TypeImagePromoted, Source: "/slipway/promoter",
			Environment: "tst", Subject: tst.String(), CausationID: pushedID, Time: at.Add(6 * time.Second), Data: promotedTst,
		},
		{
			ID: events.CausedID(approvalID, events.TypePromotionFailed, "1"), Type: events.TypePromotionFailed,
			Source: "/slipway/promoter", Environment: "prd", CausationID: approvalID, Time: at.Add(96 * time.Minute),
			Data: events.PromotionFailed{
				Promotion: "tst-to-prd", From: tst, To: prd,
				Error: "push manifest to " + prdReg + ": 503 Service Unavailable", Attempt: 1, Retryable: true,
			},
		},
		{
			ID: deployID, Type: events.TypeDeploymentStarted, Source: "/slipway/deployer",
			Environment: "tst", Subject: "vsphere-tst:/payments/api", CausationID: promotedTstID, Time: at.Add(8 * time.Second), Data: deployment,
		},
		{
			ID: events.CausedID(deployID, events.TypeDeploymentSucceeded), Type: events.TypeDeploymentSucceeded,
			Source: "/slipway/deployer", Environment: "tst", Subject: "vsphere-tst:/payments/api", CausationID: deployID,
			Time: at.Add(56 * time.Second), Data: succeeded,
		},
		{
			ID: failedID, Type: events.TypeDeploymentFailed, Source: "/slipway/deployer",
			Environment: "prd", Subject: "vsphere-prd:/payments/api", CausationID: approvalID, Time: at.Add(108 * time.Minute), Data: failed,
		},
		{
			ID: events.ID("drift", "vsphere-prd", "/payments/api", "2025-06-02T12:00:00Z"), Type: events.TypeDriftDetected,
			Source: "/slipway/deployer", Environment: "prd", Time: at.Add(165 * time.Minute),
			Data: events.DriftDetected{
				Cluster: "vsphere-prd", Environment: "prd", Platform: events.PlatformMarathon, AppID: "/payments/api",
				ExpectedImage: prd.String(), ActualImage: prdReg + "/" + repo + ":1.4.2-hotfix",
				Reason: "the workload runs another image than Slipway put or found there",
			},
		},
		{
			ID: events.ID("compliance.violated", "vsphere-prd", "/payments/api", "own-registry", prdReg+"/"+repo+":1.4.2-hotfix"), Type: events.TypeComplianceViolated,
			Source: "/slipway/deployer/vsphere-prd", Environment: "prd", Subject: "vsphere-prd:/payments/api", Time: at.Add(166 * time.Minute),
			Data: events.ComplianceViolated{
				Cluster: "vsphere-prd", Environment: "prd", AppID: "/payments/api", Rule: "own-registry", Kind: "ownRegistry",
				Image:  "docker.io/library/nginx:1.27@sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac",
				Digest: "sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac",
				Detail: "runs an image of docker.io, not of prd's registry " + prdReg,
			},
		},
		{
			ID: events.ID("deployment.refused", "vsphere-prd", "sha256:9d2f0c4b7e61a8f35c0e2b9d4a7f1c6e8b3d5a0f2c4e6b8d1a3c5e7f9b0d2a4c"), Type: events.TypeDeploymentRefused,
			Source: "/slipway/deployer/vsphere-prd", Environment: "prd", Subject: prdReg + "/" + repo + ":1.4.3@sha256:9d2f0c4b7e61a8f35c0e2b9d4a7f1c6e8b3d5a0f2c4e6b8d1a3c5e7f9b0d2a4c",
			CausationID: events.ID("image.pushed", "prd", prdReg, repo, "1.4.3"), Time: at.Add(170 * time.Minute),
			Data: events.DeploymentRefused{
				Cluster: "vsphere-prd", Environment: "prd", Image: prdReg + "/" + repo + ":1.4.3@sha256:9d2f0c4b7e61a8f35c0e2b9d4a7f1c6e8b3d5a0f2c4e6b8d1a3c5e7f9b0d2a4c",
				Digest: "sha256:9d2f0c4b7e61a8f35c0e2b9d4a7f1c6e8b3d5a0f2c4e6b8d1a3c5e7f9b0d2a4c", Repository: repo, Tag: "1.4.3",
				Actor: "jdoe", Source: "prd-registry", Reason: "vsphere-prd deploys only images a Slipway promotion brought into prd (accept: promoted); this one was pushed there directly",
				Workloads: []string{"/payments/api"},
			},
		},
		{
			ID: events.CausedID(failedID, events.TypeNotificationFailed, "team-slack"), Type: events.TypeNotificationFailed,
			Source: "/slipway/notifier", Environment: "prd", CausationID: failedID, Time: at.Add(110 * time.Minute),
			Data: events.NotificationFailed{
				Receiver: "team-slack", EventID: failedID, EventType: string(events.TypeDeploymentFailed),
				Error: "slack webhook: 500 Internal Server Error", Attempts: 5,
			},
		},
		{
			// The key is the dead letter's: consumer, stream and sequence.
			ID:     events.CausedID(failedID, events.TypeEventDeadLettered, "notifier-team-slack:"+bus.DefaultStream+":1187"),
			Type:   events.TypeEventDeadLettered,
			Source: "/slipway/consumer/notifier-team-slack", Environment: "prd", Subject: "vsphere-prd:/payments/api",
			CausationID: failedID, Time: at.Add(110 * time.Minute),
			Data: events.EventDeadLettered{
				Consumer: "notifier-team-slack", Stream: bus.DefaultStream, Sequence: 1187, Subject: "slipway.deployment.failed.prd",
				EventID: failedID, EventType: string(events.TypeDeploymentFailed),
				Error: "slack webhook: 500 Internal Server Error", Deliveries: 5, DLQSequence: 12,
				DeadLetteredAt: at.Add(110 * time.Minute),
			},
		},
		{
			ID: events.ID("action.requested", "5f0c9a7e-2b1d-4e8a-9c3f-7a6b5d4e3c2b"), Type: events.TypeActionRequested,
			Source: "/slipway/console", Environment: "prd", Subject: "vsphere-prd:/payments/api", Time: at.Add(180 * time.Minute),
			Data: events.ActionRequested{
				Action: events.ActionRollback, Actor: "maria@example.com", Via: events.ViaConsole,
				Target: events.ActionTarget{Environment: "prd", Cluster: "vsphere-prd", AppID: "/payments/api"},
				Reason: "1.4.2 doubles the checkout latency", RequestedAt: at.Add(180 * time.Minute),
			},
		},
	}
}

// variants are further samples of some types, for fields that the type's
// sample in samples() cannot carry at the same time (a superseded
// deployment is never rolled back) and for deployments on the platforms
// other than Marathon. asyncapi.yaml shows them as more examples of their
// message, and the tests hold them to the same rules.
func variants() []events.Spec {
	failed, _ := sampleFor(events.TypeDeploymentFailed)
	d := failed.Data.(events.Deployment)
	newer := "registry.prd.example/apps/payments:1.4.3@sha256:b7d2e4f6a8c0e2d4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2"
	d.Reason = "superseded: the app runs " + newer + ", deployed since this deployment began"
	d.RolledBack, d.Superseded, d.SupersededBy = false, true, newer
	d.DurationMs = 61204
	superseded := events.Spec{
		ID:   events.CausedID(failed.CausationID, events.TypeDeploymentFailed, "vsphere-prd", "/payments/api", "superseded"),
		Type: events.TypeDeploymentFailed, Source: failed.Source, Environment: failed.Environment, Subject: failed.Subject,
		CausationID: failed.CausationID, Time: failed.Time, Data: d,
	}
	return append([]events.Spec{superseded, leftManagement(), approvedPromotion(), unverifiedPromotion(), manualRollback(), refusedAction()}, otherPlatforms()...)
}

// manualRollback is the rollback the action.requested sample asks for,
// carried out: the deployment names the action and its actor, and the
// action is its cause.
func manualRollback() events.Spec {
	action, _ := sampleFor(events.TypeActionRequested)
	a := action.Data.(events.ActionRequested)
	failed, _ := sampleFor(events.TypeDeploymentFailed)
	f := failed.Data.(events.Deployment)
	d := events.Deployment{
		Cluster: f.Cluster, Environment: f.Environment, Platform: events.PlatformMarathon, AppID: f.AppID,
		FromImage: "registry.prd.example/apps/payments:1.4.2@sha256:b7d2e4f6a8c0e2d4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2",
		ToImage:   f.FromImage, Digest: f.FromImage[strings.LastIndex(f.FromImage, "@")+1:],
		DeploymentID: "0d7e2a91-5c4b-4f3e-9a8d-1b6c2e7f4a05", Revision: "2025-06-02T14:01:12.331Z",
		DurationMs: 38120, Action: a.Action, Actor: a.Actor,
	}
	d.MarathonDeploymentID, d.MarathonVersion = d.DeploymentID, d.Revision
	return events.Spec{
		ID:   events.CausedID(action.ID, events.TypeDeploymentSucceeded, f.Cluster, f.AppID, d.ToImage),
		Type: events.TypeDeploymentSucceeded, Source: "/slipway/deployer/" + f.Cluster, Environment: f.Environment,
		Subject: f.Cluster + ":" + f.AppID, CausationID: action.ID, Time: action.Time.Add(39 * time.Second), Data: d,
	}
}

// refusedAction is a redeploy the deployer did not carry out: a Marathon
// deployment of somebody else's was in progress on the workload (its id in
// deploymentId, the app's version in revision). Nothing changed, so no
// deployment.started precedes it.
func refusedAction() events.Spec {
	action, _ := sampleFor(events.TypeActionRequested)
	a := action.Data.(events.ActionRequested)
	rollback := manualRollback().Data.(events.Deployment)
	id := events.ID("action.requested", "9b4e1c7a-3d2f-4a6b-8e5c-0f1a2b3c4d5e")
	d := events.Deployment{
		Cluster: a.Target.Cluster, Environment: a.Target.Environment, Platform: events.PlatformMarathon, AppID: a.Target.AppID,
		FromImage: rollback.ToImage, ToImage: rollback.ToImage, Digest: rollback.Digest,
		DeploymentID: "6a1f0e3b-9d2c-4b7a-8e5f-2c4d6b8a0e1f", Revision: "2025-06-02T14:20:03.918Z",
		Action: events.ActionRedeploy, Actor: a.Actor, Refused: true,
		Reason: "a deployment of /payments/api is in progress (6a1f0e3b-9d2c-4b7a-8e5f-2c4d6b8a0e1f): ask again once it has ended",
	}
	return events.Spec{
		ID:   events.CausedID(id, events.TypeDeploymentFailed, d.Cluster, d.AppID, d.ToImage),
		Type: events.TypeDeploymentFailed, Source: "/slipway/deployer/" + d.Cluster, Environment: d.Environment,
		Subject: d.Cluster + ":" + d.AppID, CausationID: id, Time: action.Time.Add(5 * time.Minute), Data: d,
	}
}

// approvedPromotion is the promotion to prd the release manager approved:
// it names the approval and who granted it.
func approvedPromotion() events.Spec {
	tst, _ := sampleFor(events.TypeImagePromoted)
	p := tst.Data.(events.ImagePromoted)
	granted, _ := sampleFor(events.TypeApprovalGranted)
	decision := granted.Data.(events.ApprovalDecision)
	p.Promotion, p.From = decision.Promotion, p.To
	p.To.Environment, p.To.Registry = "prd", "registry.prd.example"
	p.ApprovalID, p.ApprovedBy = decision.ApprovalID, decision.By
	p.Verified = []events.Verified{
		{Policy: "signed-by-ci", Kind: "cosign", Identity: "https://github.com/example/payments/.github/workflows/release.yml@refs/heads/main", Issuer: "https://token.actions.githubusercontent.com"},
		{Policy: "built-by-ci", Kind: "provenance", Identity: "sha256:4f1c9e0b7a2d", Builder: "https://github.com/actions/runner/github-hosted", Source: "git+https://github.com/example/payments@refs/heads/main"},
	}
	p.SummaryDigest = "sha256:5e0c8d2a4f6b8c0e2a4c6e8f0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d"
	return events.Spec{
		ID:   events.CausedID(granted.ID, events.TypeImagePromoted, decision.Promotion),
		Type: events.TypeImagePromoted, Source: tst.Source, Environment: "prd", Subject: p.To.String(),
		CausationID: granted.ID, Time: granted.Time.Add(40 * time.Second), Data: p,
	}
}

// unverifiedPromotion is a promotion refused because the image failed a
// verification policy: final, naming the policy.
func unverifiedPromotion() events.Spec {
	failed, _ := sampleFor(events.TypePromotionFailed)
	f := failed.Data.(events.PromotionFailed)
	f.Retryable, f.Attempt, f.Policy = false, 1, "signed-by-ci"
	f.Error = "verification policy signed-by-ci: no cosign signature certified for an identity matching https://github.com/example/payments/.* by issuer https://token.actions.githubusercontent.com (1 signature found, by jdoe@example.com)"
	return events.Spec{
		ID:   events.CausedID(failed.CausationID, events.TypePromotionFailed, "verify"),
		Type: events.TypePromotionFailed, Source: failed.Source, Environment: failed.Environment, Subject: failed.Subject,
		CausationID: failed.CausationID, Time: failed.Time, Data: f,
	}
}

// leftManagement is the drift sample's app after someone removed its
// slipway.policy label: announced once, unmanaged.
func leftManagement() events.Spec {
	drift, _ := sampleFor(events.TypeDriftDetected)
	d := drift.Data.(events.DriftDetected)
	d.ActualImage, d.Unmanaged = d.ExpectedImage, true
	d.Reason = "the slipway.policy label was removed: Slipway no longer manages the workload"
	return events.Spec{
		ID:   events.ID("drift", "vsphere-prd", "/payments/api", "unlabelled"),
		Type: events.TypeDriftDetected, Source: drift.Source, Environment: drift.Environment, Subject: drift.Subject,
		Time: drift.Time.Add(time.Hour), Data: d,
	}
}

// otherPlatforms are the Marathon sample's deployment in tst on a Docker
// Engine host and on a Swarm: no Marathon fields, the platform's own ids
// in deploymentId and revision, and the workload's own name in appId.
func otherPlatforms() []events.Spec {
	started, _ := sampleFor(events.TypeDeploymentStarted)
	marathon := started.Data.(events.Deployment)
	onPlatform := func(typ events.Type, cluster, platform, appID, deploymentID, revision string, at time.Duration) events.Spec {
		d := events.Deployment{
			Cluster: cluster, Environment: marathon.Environment, Platform: platform, AppID: appID,
			FromImage: marathon.FromImage, ToImage: marathon.ToImage, Digest: marathon.Digest,
			DeploymentID: deploymentID, Revision: revision, Notify: marathon.Notify,
		}
		startedID := events.CausedID(started.CausationID, events.TypeDeploymentStarted, cluster, appID)
		spec := events.Spec{
			ID: startedID, Type: typ, Source: started.Source, Environment: started.Environment,
			Subject: cluster + ":" + appID, CausationID: started.CausationID, Time: started.Time.Add(at), Data: d,
		}
		if typ == events.TypeDeploymentSucceeded {
			d.DurationMs = at.Milliseconds()
			spec.ID, spec.CausationID, spec.Data = events.CausedID(startedID, typ), startedID, d
		}
		return spec
	}
	// Docker recreates the container: the new one's id is both the
	// deployment and the revision. A Swarm update makes a new service
	// version, which is both too.
	const container = "8d2f6c1e4b7a9d3f5e0c2b8a6d4f1e7c9b3a5d8f2e6c0b4a7d1f9e3c5b8a2d6f"
	return []events.Spec{
		onPlatform(events.TypeDeploymentStarted, "vch-tst", events.PlatformDocker, "payments-api", container, container, 0),
		onPlatform(events.TypeDeploymentSucceeded, "swarm-tst", events.PlatformSwarm, "payments_api", "1187", "1187", 21406*time.Millisecond),
	}
}

// sampleTrace is the producer's span the samples were published in, so that
// they show the traceparent extension.
var sampleTrace = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
	Remote:     true,
})

// sampleEvent builds the event of spec the way a Slipway service does.
func sampleEvent(spec events.Spec) (events.Event, error) {
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sampleTrace)
	return events.New(ctx, spec)
}

// sampleJSON is the message body of spec's event, indented.
func sampleJSON(spec events.Spec) ([]byte, error) {
	e, err := sampleEvent(spec)
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", spec.Type, err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sampleFor returns the sample of t.
func sampleFor(t events.Type) (events.Spec, bool) {
	for _, s := range samples() {
		if s.Type == t {
			return s, true
		}
	}
	return events.Spec{}, false
}
