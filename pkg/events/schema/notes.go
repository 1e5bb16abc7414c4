package schema

import (
	"fmt"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// note is what the contract says about an event type beyond its Go data.
type note struct {
	summary string
	// env names whose environment the subject's last token is.
	env string
	// subject describes the CloudEvents subject; empty where the contract
	// does not fix one.
	subject string
}

const imageSubject = "image reference `registry/repository:tag@digest`"

var notes = map[events.Type]note{
	events.TypeImagePushed:         {"An image (manifest or index) was pushed by tag to an environment's registry.", "the registry's", "pushed " + imageSubject},
	events.TypeApprovalRequested:   {"A promotion waits for an approver's decision.", "the target's", ""},
	events.TypeApprovalGranted:     {"An approver allowed a waiting promotion.", "the target's", ""},
	events.TypeApprovalRejected:    {"An approver refused a waiting promotion.", "the target's", ""},
	events.TypeImagePromoted:       {"An image was copied to the next environment's registry.", "the target's", "promoted (target) " + imageSubject},
	events.TypePromotionFailed:     {"Copying an image to the next environment's registry failed.", "the target's", ""},
	events.TypeDeploymentStarted:   {"Slipway started redeploying a workload (a Marathon app, a Docker container, a Swarm service) to a new image.", "the cluster's", "`cluster:appId`"},
	events.TypeDeploymentSucceeded: {"The redeployed workload became healthy.", "the cluster's", "`cluster:appId`"},
	events.TypeDeploymentFailed:    {"A redeploy failed or timed out, and may have been rolled back; or a newer image overtook it (`superseded`).", "the cluster's", "`cluster:appId`"},
	events.TypeDriftDetected:       {"A workload runs an image other than the one Slipway last deployed.", "the cluster's", ""},
	events.TypeComplianceViolated:  {"A managed workload breaks a compliance rule of its environment (announced once until it complies again).", "the cluster's", "`cluster:appId`"},
	events.TypeDeploymentRefused:   {"An image pushed straight into the registry of an environment that deploys only promoted images (`accept: promoted`) was not deployed on a cluster.", "the cluster's", "pushed " + imageSubject},
	events.TypeNotificationFailed:  {"A notification receiver could not be reached after the last attempt.", "the undelivered event's", ""},
	events.TypeActionRequested:     {"A person asked for a manual action (rollback, redeploy, promote, redrive) through the API, the CLI, the console or Slack; the work it causes names it as causation.", "the workload's, the promotion target's or the dead letter's", "`cluster:appId` for rollback and redeploy, the source " + imageSubject + " for promote"},
	events.TypeEventDeadLettered:   {"A consumer gave up on a message and stored it in the dead-letter stream.", "the dead-lettered message's (`" + bus.UnknownEnvironment + "` when its subject has none)", "the dead-lettered event's `subject`, when it has one"},
}

func noteFor(t events.Type) (note, error) {
	n, ok := notes[t]
	if !ok {
		return note{}, fmt.Errorf("event type %s is not documented: add it to notes in pkg/events/schema/notes.go", t)
	}
	return n, nil
}
