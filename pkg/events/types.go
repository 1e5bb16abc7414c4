package events

import (
	"fmt"
	"strings"
	"time"
)

// Type is a Slipway CloudEvent type, "dev.slipway.<noun>.<verb>.v1".
type Type string

// Every event type Slipway emits.
const (
	TypeImagePushed         Type = "dev.slipway.image.pushed.v1"
	TypeApprovalRequested   Type = "dev.slipway.approval.requested.v1"
	TypeApprovalGranted     Type = "dev.slipway.approval.granted.v1"
	TypeApprovalRejected    Type = "dev.slipway.approval.rejected.v1"
	TypeImagePromoted       Type = "dev.slipway.image.promoted.v1"
	TypePromotionFailed     Type = "dev.slipway.promotion.failed.v1"
	TypeDeploymentStarted   Type = "dev.slipway.deployment.started.v1"
	TypeDeploymentSucceeded Type = "dev.slipway.deployment.succeeded.v1"
	TypeDeploymentFailed    Type = "dev.slipway.deployment.failed.v1"
	TypeDriftDetected       Type = "dev.slipway.drift.detected.v1"
	TypeComplianceViolated  Type = "dev.slipway.compliance.violated.v1"
	TypeDeploymentRefused   Type = "dev.slipway.deployment.refused.v1"
	TypeNotificationFailed  Type = "dev.slipway.notification.failed.v1"
	TypeEventDeadLettered   Type = "dev.slipway.event.deadlettered.v1"
	TypeActionRequested     Type = "dev.slipway.action.requested.v1"
)

const typePrefix, typeSuffix = "dev.slipway.", ".v1"

// Types lists every event type with a zero value of its data payload, in the
// order of the contract table. Documentation and schemas are generated from it.
var Types = []struct {
	Type Type
	Data any
}{
	{TypeImagePushed, ImagePushed{}},
	{TypeApprovalRequested, ApprovalRequested{}},
	{TypeApprovalGranted, ApprovalDecision{}},
	{TypeApprovalRejected, ApprovalDecision{}},
	{TypeImagePromoted, ImagePromoted{}},
	{TypePromotionFailed, PromotionFailed{}},
	{TypeDeploymentStarted, Deployment{}},
	{TypeDeploymentSucceeded, Deployment{}},
	{TypeDeploymentFailed, Deployment{}},
	{TypeDriftDetected, DriftDetected{}},
	{TypeComplianceViolated, ComplianceViolated{}},
	{TypeDeploymentRefused, DeploymentRefused{}},
	{TypeNotificationFailed, NotificationFailed{}},
	{TypeEventDeadLettered, EventDeadLettered{}},
	{TypeActionRequested, ActionRequested{}},
}

// Short returns "<noun>.<verb>", the part of the type that the subject and
// configuration (route matches) use.
func (t Type) Short() string {
	return strings.TrimSuffix(strings.TrimPrefix(string(t), typePrefix), typeSuffix)
}

// ParseType accepts a full type ("dev.slipway.image.pushed.v1") or its short
// form ("image.pushed") and returns the full type if it is a known one.
func ParseType(s string) (Type, error) {
	for _, t := range Types {
		if string(t.Type) == s || t.Type.Short() == s {
			return t.Type, nil
		}
	}
	return "", fmt.Errorf("unknown event type %q", s)
}

// ImageRef names one image in one environment's registry.
type ImageRef struct {
	Environment string `json:"environment"`
	Registry    string `json:"registry"`
	Repository  string `json:"repository"`
	Tag         string `json:"tag,omitempty"`
	Digest      string `json:"digest,omitempty"`
}

// String renders the reference as registry/repository[:tag][@digest], the
// CloudEvents subject of image events.
func (r ImageRef) String() string {
	return ImageReference(r.Registry, r.Repository, r.Tag, r.Digest)
}

// ImageReference renders registry/repository[:tag][@digest].
func ImageReference(registry, repository, tag, digest string) string {
	s := repository
	if registry != "" {
		s = registry + "/" + repository
	}
	if tag != "" {
		s += ":" + tag
	}
	if digest != "" {
		s += "@" + digest
	}
	return s
}

// ImagePushed is the data of dev.slipway.image.pushed.v1: a manifest or index
// was pushed by tag to an environment's registry.
type ImagePushed struct {
	Environment string `json:"environment"`
	Registry    string `json:"registry"`
	Repository  string `json:"repository"`
	Tag         string `json:"tag"`
	// Digest is empty only when the webhook carried none and the registry
	// could not be asked for it.
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	// Actor is who pushed, as the registry reported it, cleaned by ingest:
	// one line of plain text without control characters, at most 256
	// characters (MaxActorLength), cut with "…" when longer. Empty when the
	// registry does not say.
	Actor string `json:"actor" jsonschema:"maxLength=256"`
	// Source is the name of the ingest source (webhook endpoint) that received it.
	Source string `json:"source"`
	// Format is the webhook format of that source, e.g. "distribution".
	Format string `json:"format"`
	// UpstreamID is the registry's own delivery/event id, or the composite
	// key Slipway derived when the format has none.
	UpstreamID string    `json:"upstreamId"`
	PushedAt   time.Time `json:"pushedAt"`
}

// MaxActorLength bounds ImagePushed.Actor, in characters: a registry's
// user names and e-mail addresses fit; a payload that carries more is cut
// rather than refused.
const MaxActorLength = 256

// Ref returns the pushed image as an ImageRef.
func (d ImagePushed) Ref() ImageRef {
	return ImageRef{Environment: d.Environment, Registry: d.Registry, Repository: d.Repository, Tag: d.Tag, Digest: d.Digest}
}

// ApprovalRequested is the data of dev.slipway.approval.requested.v1.
type ApprovalRequested struct {
	ApprovalID string `json:"approvalId"`
	// Promotion is the name of the promotion rule.
	Promotion string    `json:"promotion"`
	From      ImageRef  `json:"from"`
	To        ImageRef  `json:"to"`
	Approvers []string  `json:"approvers,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// ApprovalDecision is the data of dev.slipway.approval.granted.v1 and
// dev.slipway.approval.rejected.v1.
type ApprovalDecision struct {
	ApprovalID string `json:"approvalId"`
	Promotion  string `json:"promotion,omitempty"`
	// By is the approver's name from the configuration, or the OIDC user
	// who decided in the console.
	By     string `json:"by"`
	Reason string `json:"reason"`
	// Via is the interface the decision came through (api, slack,
	// console); empty on events from before it was recorded.
	Via string `json:"via,omitempty" jsonschema:"enum=api,enum=cli,enum=console,enum=slack"`
}

// ImagePromoted is the data of dev.slipway.image.promoted.v1.
type ImagePromoted struct {
	Promotion       string   `json:"promotion"`
	From            ImageRef `json:"from"`
	To              ImageRef `json:"to"`
	BlobsCopied     int      `json:"blobsCopied"`
	BlobsSkipped    int      `json:"blobsSkipped"`
	BytesCopied     int64    `json:"bytesCopied"`
	ReferrersCopied int      `json:"referrersCopied"`
	DurationMs      int64    `json:"durationMs"`
	// ApprovalID is the approval that allowed the promotion, when its rule
	// requires one; ApprovedBy is who granted it. Both are absent from
	// promotions that needed no approval, and from older events.
	ApprovalID string `json:"approvalId,omitempty"`
	ApprovedBy string `json:"approvedBy,omitempty"`
	// Verified are the rule's verification policies the image passed,
	// with the identities that signed it; absent when the rule verifies
	// nothing.
	Verified []Verified `json:"verified,omitempty"`
	// SummaryDigest is the digest of the verification summary (SLSA VSA)
	// attached to the promoted image, signed with Slipway's key.
	SummaryDigest string `json:"summaryDigest,omitempty"`
}

// Verified is one verification policy an image passed.
type Verified struct {
	// Policy is the policy's name, Kind what it checked.
	Policy string `json:"policy"`
	Kind   string `json:"kind" jsonschema:"enum=cosign,enum=notation,enum=provenance"`
	// Identity is who signed: a key's fingerprint (sha256:…), a keyless
	// certificate's subject, a Notation certificate's subject.
	Identity string `json:"identity"`
	// Issuer is the keyless certificate's OIDC issuer, or the Notation
	// signing certificate's issuer.
	Issuer string `json:"issuer,omitempty"`
	// Builder and Source are what a provenance policy checked: the
	// builder id and the source repository (with its ref).
	Builder string `json:"builder,omitempty"`
	Source  string `json:"source,omitempty"`
}

// PromotionFailed is the data of dev.slipway.promotion.failed.v1.
type PromotionFailed struct {
	Promotion string   `json:"promotion"`
	From      ImageRef `json:"from"`
	To        ImageRef `json:"to"`
	Error     string   `json:"error"`
	Attempt   int      `json:"attempt"`
	// Retryable tells whether Slipway will try again (5xx, timeouts) or gave
	// up for good (401/403/404, a missing signature).
	Retryable bool `json:"retryable"`
	// Policy names the verification policy the image failed, when that is
	// why (Error says why in words).
	Policy string `json:"policy,omitempty"`
}

// Platforms a deployment event's Platform names.
const (
	PlatformMarathon = "marathon" // a Marathon (DC/OS) cluster
	PlatformDocker   = "docker"   // a Docker Engine host (a VIC Virtual Container Host among them)
	PlatformSwarm    = "swarm"    // a Docker Swarm
)

// Deployment is the data of dev.slipway.deployment.started.v1,
// .succeeded.v1 (DurationMs set) and .failed.v1 (Reason, RolledBack and,
// for a deployment a newer image overtook, Superseded and SupersededBy set),
// on every platform. A deployment a person asked for (a rollback, a
// redeploy) names the action and its actor; a refused action ends
// deployment.failed with Refused set and no deployment.started.
type Deployment struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	// Platform is the cluster's platform: marathon, docker (a Docker Engine
	// host) or swarm (a Docker Swarm).
	Platform string `json:"platform" jsonschema:"minLength=1,pattern=^[a-z][a-z0-9]*$"`
	// AppID is the workload's id on its platform: the Marathon app id, the
	// Docker container's name, the Swarm service's name.
	AppID     string `json:"appId"`
	FromImage string `json:"fromImage"`
	ToImage   string `json:"toImage"`
	Digest    string `json:"digest"`
	// DeploymentID is the platform's own id of the rollout: Marathon's
	// deployment id, the Swarm service version index the update made, the
	// id of the new Docker container.
	DeploymentID string `json:"deploymentId"`
	// Revision is the platform's version of the workload's definition once
	// the change is made: Marathon's app version, the Swarm service's
	// version index, the Docker container's id.
	Revision string `json:"revision"`
	// MarathonDeploymentID is Marathon's deployment id, the same as
	// DeploymentID; set on Marathon clusters' events only, for consumers
	// written before there were other platforms.
	MarathonDeploymentID string `json:"marathonDeploymentId,omitempty"`
	// MarathonVersion is the Marathon app's version, the same as Revision;
	// set on Marathon clusters' events only, for consumers written before
	// there were other platforms.
	MarathonVersion string `json:"marathonVersion,omitempty"`
	// Notify is the workload's slipway.notify label, an extra notification target.
	Notify     string `json:"notify,omitempty"`
	DurationMs int64  `json:"durationMs,omitempty"`
	Reason     string `json:"reason,omitempty"`
	RolledBack bool   `json:"rolledBack,omitempty"`
	// Superseded (deployment.failed only) says a newer image was deployed
	// over this one before this deployment ended: the release was
	// replaced, it did not fail, and nobody needs paging for it.
	Superseded bool `json:"superseded,omitempty"`
	// SupersededBy is the newer image, when superseded.
	SupersededBy string `json:"supersededBy,omitempty"`
	// Action is the manual action a person asked for that this deployment
	// carries out (rollback, redeploy); the event's causationid is then
	// the action.requested event. Empty for a deployment of a push or a
	// promotion.
	Action string `json:"action,omitempty" jsonschema:"enum=rollback,enum=redeploy"`
	// Actor is who asked for the action, as action.requested names them.
	Actor string `json:"actor,omitempty"`
	// Refused (deployment.failed of an action only) says the action was
	// not carried out and nothing changed on the platform; Reason says why
	// (no such workload, not managed, nothing to roll back to, a
	// deployment in progress, outside deploy.only).
	Refused bool `json:"refused,omitempty"`
}

// Rollout returns the platform, deployment id and revision of d. An event
// published before deployment events carried them (one still in the
// stream) has only the Marathon fields, Marathon being the one platform
// then: Rollout reads those instead.
func (d Deployment) Rollout() (platform, deploymentID, revision string) {
	platform, deploymentID, revision = d.Platform, d.DeploymentID, d.Revision
	legacy := d.MarathonDeploymentID != "" || d.MarathonVersion != ""
	if platform == "" && legacy {
		platform = PlatformMarathon
	}
	if deploymentID == "" {
		deploymentID = d.MarathonDeploymentID
	}
	if revision == "" {
		revision = d.MarathonVersion
	}
	return platform, deploymentID, revision
}

// DriftDetected is the data of dev.slipway.drift.detected.v1: a workload
// runs an image other than the one Slipway last deployed.
type DriftDetected struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment,omitempty"`
	// Platform is the cluster's platform (marathon, docker or swarm), as in
	// deployment events. Optional: older events lack it.
	Platform string `json:"platform,omitempty" jsonschema:"minLength=1,pattern=^[a-z][a-z0-9]*$"`
	// AppID is the workload's id on its platform, as in deployment events.
	AppID string `json:"appId"`
	// ExpectedImage is what Slipway last put or found there.
	ExpectedImage string `json:"expectedImage"`
	// ActualImage is what the workload runs instead; empty when it was
	// removed.
	ActualImage string `json:"actualImage"`
	// Unmanaged is set when the workload left Slipway's management: its
	// slipway.policy label was removed, or the workload was removed.
	// Announced once; Slipway no longer deploys to it.
	Unmanaged bool `json:"unmanaged,omitempty"`
	// Reason says in words what changed.
	Reason string `json:"reason,omitempty"`
}

// DeploymentRefused is the data of dev.slipway.deployment.refused.v1: an
// image was pushed straight into the registry of an environment whose
// cluster deploys only what a Slipway promotion brought there (accept:
// promoted), so no workload of that cluster was updated. Announced once per
// cluster and digest.
type DeploymentRefused struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	// Image is the pushed image, registry/repository:tag@digest.
	Image      string `json:"image"`
	Digest     string `json:"digest"`
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	// Actor is who pushed, as the image.pushed event says; empty when the
	// registry did not say.
	Actor string `json:"actor"`
	// Source is the ingest source (webhook endpoint) that received the push.
	Source string `json:"source"`
	// Reason says why the image was not deployed.
	Reason string `json:"reason"`
	// Workloads are the ids of the workloads whose policy would have taken
	// the image.
	Workloads []string `json:"workloads"`
}

// ComplianceViolated is the data of dev.slipway.compliance.violated.v1: a
// managed workload breaks one of its environment's compliance rules. It is
// announced once per (cluster, workload, rule) until the workload complies
// again; a violation that comes back after that is announced again.
type ComplianceViolated struct {
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	// AppID is the workload's id on its platform, as in deployment events.
	AppID string `json:"appId"`
	// Rule is the rule's name in compliance[], Kind what it checks
	// (ownRegistry, promoted, pinnedDigest, referrers or maxAge).
	Rule string `json:"rule"`
	Kind string `json:"kind" jsonschema:"enum=ownRegistry,enum=promoted,enum=pinnedDigest,enum=referrers,enum=maxAge"`
	// Image is the image as the workload's definition writes it.
	Image string `json:"image"`
	// Digest is the digest the workload runs, when known.
	Digest string `json:"digest,omitempty"`
	// Detail says what is wrong, in words for an auditor.
	Detail string `json:"detail"`
}

// The manual actions a person may ask for (ActionRequested.Action).
const (
	// ActionRollback puts a workload back on the image it ran before its
	// last deployment.
	ActionRollback = "rollback"
	// ActionRedeploy deploys a workload's current image again (a restart
	// of every instance).
	ActionRedeploy = "redeploy"
	// ActionPromote runs a promotion rule for one image now, without
	// waiting for its soak time; the rule's approval still applies.
	ActionPromote = "promote"
	// ActionRedrive re-publishes a dead letter to its original subject.
	ActionRedrive = "redrive"
)

// The interfaces a person acts through (ActionRequested.Via, and
// ApprovalDecision.Via).
const (
	ViaAPI     = "api"
	ViaCLI     = "cli"
	ViaConsole = "console"
	ViaSlack   = "slack"
)

// ActionRequested is the data of dev.slipway.action.requested.v1: a person
// asked for a manual action through the API, the CLI, the console or
// Slack. It is the action's audit record and, for rollback, redeploy and
// promote, the request the deployer or promoter carries out: the events of
// that work name this one as their causation. A redrive is carried out by
// the interface that announced it, right after.
type ActionRequested struct {
	Action string `json:"action" jsonschema:"enum=rollback,enum=redeploy,enum=promote,enum=redrive"`
	// Actor is who asked: the approver's name (API, Slack), the OIDC
	// user (console) or the operating-system user (CLI).
	Actor string `json:"actor"`
	Via   string `json:"via" jsonschema:"enum=api,enum=cli,enum=console,enum=slack"`
	// Target names what the action is about.
	Target ActionTarget `json:"target"`
	// Reason is the actor's own words; empty when none was given.
	Reason      string    `json:"reason,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
}

// ActionTarget is what an action is about: a workload (rollback,
// redeploy), an image and a promotion rule (promote) or a dead letter
// (redrive).
type ActionTarget struct {
	// Environment is the workload's, the promotion's target or the dead
	// letter's environment: the subject's environment.
	Environment string `json:"environment"`
	// Cluster and AppID name the workload (rollback, redeploy).
	Cluster string `json:"cluster,omitempty"`
	AppID   string `json:"appId,omitempty"`
	// Image is the image the action is about: for promote the source image
	// (registry/repository:tag@digest, in the rule's from environment); for
	// rollback the image to go back to, when the requester names one.
	Image string `json:"image,omitempty"`
	// Promotion is the rule's name (promote).
	Promotion string `json:"promotion,omitempty"`
	// Sequence and EventID name the dead letter (redrive): its sequence in
	// the dead-letter stream and the event it holds.
	Sequence uint64 `json:"sequence,omitempty"`
	EventID  string `json:"eventId,omitempty"`
}

// NotificationFailed is the data of dev.slipway.notification.failed.v1: a
// receiver could not be reached after the last attempt.
type NotificationFailed struct {
	Receiver string `json:"receiver"`
	EventID  string `json:"eventId"`
	// EventType is the type of the event that could not be delivered.
	EventType string `json:"eventType,omitempty"`
	Error     string `json:"error"`
	Attempts  int    `json:"attempts"`
}

// EventDeadLettered is the data of dev.slipway.event.deadlettered.v1: a
// consumer gave up on a message and stored it in the dead-letter stream.
type EventDeadLettered struct {
	// Consumer is the durable name of the consumer that gave up.
	Consumer string `json:"consumer"`
	// Stream is the stream the message was read from.
	Stream string `json:"stream"`
	// Sequence is the message's sequence number in that stream.
	Sequence uint64 `json:"sequence"`
	// Subject is the message's original NATS subject.
	Subject string `json:"subject"`
	// EventID is the id of the dead-lettered event; empty when the message
	// is not a CloudEvent.
	EventID string `json:"eventId,omitempty"`
	// EventType is the type of the dead-lettered event; empty when the
	// message is not a CloudEvent.
	EventType string `json:"eventType,omitempty"`
	// Error is the consumer's last error, on one line, cut to 1 KiB.
	Error string `json:"error"`
	// Deliveries is how many times the message was delivered.
	Deliveries int `json:"deliveries"`
	// DLQSequence is the dead letter's sequence number in the dead-letter
	// stream: the SEQ of slipway dlq show and slipway dlq redrive.
	DLQSequence uint64 `json:"dlqSequence"`
	// DeadLetteredAt is when the consumer gave up.
	DeadLetteredAt time.Time `json:"deadLetteredAt"`
}
