// Package target is the seam between the deployer and the platforms it
// deploys on. The deployer decides (which workloads take which image, in
// which order, when to roll back) and keeps the durable record of every
// deployment; a Target only reads its platform and carries out one step
// at a time. Marathon, Docker Engine hosts and Docker Swarm each implement
// it in a package of their own.
//
// Every method must be safe to call again after a crash at any point: the
// deployer resumes a deployment by calling the method of the phase it
// recorded, so a Target finds from the platform itself (an app's version,
// a container's name and labels, a service's version and update status)
// how far an earlier call got.
package target

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Workload is one unit a platform runs and Slipway may update: a Marathon
// app, a Docker container, a Swarm service.
type Workload struct {
	// ID names the workload on its platform: the Marathon app id, the
	// container's name, the Swarm service's name.
	ID string
	// Image is the image as the workload's definition writes it.
	Image string
	// Labels are the workload's own labels (slipway.policy opts in).
	Labels map[string]string
	// Revision is the platform's version of the definition: Marathon's app
	// version, Swarm's service version index, the Docker container's id.
	// It changes with every change of the definition.
	Revision string
	// Rollouts are the platform's deployments in progress on the workload
	// (Marathon's deployment ids, a Swarm update, a recreate half done).
	Rollouts []string
	// Wanted, Running and Healthy count instances (Marathon tasks, Swarm
	// tasks, 1 for a container).
	Wanted, Running, Healthy int
	// Nodes are the hosts its instances run on.
	Nodes []string
}

// Settled tells whether the workload runs its image as wanted, with no
// deployment in progress.
func (w Workload) Settled() bool {
	return len(w.Rollouts) == 0 && w.Running >= w.Wanted && w.Healthy >= w.Wanted
}

// Rollout is an update or a rollback the platform carries out.
type Rollout struct {
	// ID follows it (Await): Marathon's deployment id, the Swarm service
	// version the update made, the new container's id.
	ID string
	// Revision is the workload's revision once the change is made.
	Revision string
}

// Outcome is how a rollout ended.
type Outcome struct {
	Success bool
	// Gone means the end went unseen (an event stream was down): what the
	// workload runs now tells the rest.
	Gone bool
	// Reason says why it failed, in words for an operator.
	Reason string
}

// UpdateOptions qualify an Update.
type UpdateOptions struct {
	// Force overrides a deployment of somebody else's in progress
	// (Marathon's force); platforms without one ignore it.
	Force bool
	// Deadline bounds waiting for the platform (another deployment to
	// end before this one may begin).
	Deadline time.Time
	// Restart replaces every instance even though image is what the
	// workload runs (a redeploy): Marathon restarts the app, Docker
	// recreates the container, Swarm forces an update. The deployer asks
	// for it only while the workload's revision is the one it read before
	// the redeploy, so a call again after a crash does not restart twice.
	Restart bool
}

// Change is one thing Watch saw.
type Change struct {
	// Workload is a workload's new definition, when the platform's event
	// carried one.
	Workload *Workload
	// Refresh names a workload to read again.
	Refresh string
	// Removed names a workload that no longer exists.
	Removed string
	// Resync says changes may have been missed (a reconnect): list again.
	Resync bool
}

// Target is one cluster of a platform.
type Target interface {
	// List returns every workload of the cluster, with or without a
	// slipway.policy label: the inventory records the ones without it too
	// (an auditor asks what runs, not only what Slipway manages). The
	// deployer only ever deploys, and reports drift of, the labelled ones.
	List(ctx context.Context) ([]Workload, error)
	// Get reads one workload now; ErrNotFound when it does not exist.
	Get(ctx context.Context, id string) (Workload, error)
	// Watch reports changes until ctx ends. It reconnects by itself and
	// sends Resync after every reconnect.
	Watch(ctx context.Context, changes chan<- Change)
	// Update starts moving w to image. w is the workload as the deployer
	// last read it: a platform with optimistic concurrency refuses the
	// change when the workload changed since (ErrConflict).
	// Called again after a crash, it continues what an earlier call began.
	Update(ctx context.Context, w Workload, image string, o UpdateOptions) (Rollout, error)
	// Await waits for the rollout's outcome until deadline; timedOut
	// reports that the deadline passed first.
	Await(ctx context.Context, workloadID, rolloutID string, deadline time.Time) (o Outcome, timedOut bool, err error)
	// RollBack undoes the rollout in progress, bringing the workload back
	// to fromImage, and returns the rollback to Await. ErrOver means no
	// rollout is in progress any more: the deployer then decides from the
	// workload as it runs.
	RollBack(ctx context.Context, workloadID, rolloutID, fromImage string) (Rollout, error)
	// Endpoint names where the platform is reached, for logs.
	Endpoint() string
}

// Errors a Target returns (wrapped).
var (
	ErrNotFound = errors.New("workload not found")
	ErrOver     = errors.New("no rollout in progress")
	// ErrConflict: the workload changed since it was read.
	ErrConflict = errors.New("the workload changed since it was read")
)

// Options are what the deployer gives every Target it opens.
type Options struct {
	Log *slog.Logger
	// PollInterval is how often a Target that follows a rollout by polling
	// asks (Marathon's /v2/deployments when its event stream is down).
	PollInterval time.Duration
}
