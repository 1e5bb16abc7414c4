package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// KV buckets of the deployer.
const (
	// StateBucket holds one record per (cluster, app, target image): the
	// phase its deployment is in.
	StateBucket = "slipway-deployments"
	// LockBucket holds one lease per (cluster, app) being updated, so that
	// two deployer replicas never update one app at the same time. Leases
	// expire with the bucket's max age unless their holder renews them.
	LockBucket = "slipway-deploy-locks"
	lockTTL    = 30 * time.Second
)

// Phases of a deployment record.
const (
	phaseUpdating    = "updating"     // about to update (or the update's answer was lost)
	phaseFollowing   = "following"    // the platform deploys; waiting for the outcome
	phaseRollingBack = "rolling-back" // rolling back; waiting for the platform's rollback
	phaseRefusing    = "refusing"     // a manual action refused: to announce, nothing to change
	phaseDone        = "done"
)

// record is the durable state of one app's deployment to one image.
type record struct {
	Cluster     string        `json:"cluster"`
	Environment string        `json:"environment"`
	AppID       string        `json:"appId"`
	Phase       string        `json:"phase"`
	CauseID     string        `json:"causeId"`
	FromImage   string        `json:"fromImage"`
	ToImage     string        `json:"toImage"`
	Digest      string        `json:"digest,omitempty"`
	PushedAt    time.Time     `json:"pushedAt"`
	Policy      string        `json:"policy"`
	Notify      string        `json:"notify,omitempty"`
	Timeout     time.Duration `json:"timeout"`
	StartedAt   time.Time     `json:"startedAt"`

	// ApprovalID and Approver name the approval of the promotion being
	// deployed, when it needed one (the inventory shows them).
	ApprovalID string `json:"approvalId,omitempty"`
	Approver   string `json:"approver,omitempty"`

	// Platform is the cluster's (marathon when empty: records written
	// before there were other platforms).
	Platform     string `json:"platform,omitempty"`
	DeploymentID string `json:"deploymentId,omitempty"`
	// Revision is the workload's version after the update; records written
	// before there were other platforms call it marathonVersion.
	Revision        string `json:"revision,omitempty"`
	MarathonVersion string `json:"marathonVersion,omitempty"`
	RollbackID      string `json:"rollbackId,omitempty"`
	Reason          string `json:"reason,omitempty"`
	Outcome         string `json:"outcome,omitempty"` // succeeded | failed | rolled_back | superseded | refused
	RolledBack      bool   `json:"rolledBack,omitempty"`
	// SupersededBy is the newer image that overtook this deployment.
	SupersededBy string `json:"supersededBy,omitempty"`

	// Action and Actor name the manual action a person asked for (see
	// action.go); CauseID is then its action.requested event.
	Action string `json:"action,omitempty"`
	Actor  string `json:"actor,omitempty"`
	// Restart is a redeploy: ToImage is FromImage, and the update is done
	// once the workload's revision is no longer FromRevision, the one
	// read before it.
	Restart      bool   `json:"restart,omitempty"`
	FromRevision string `json:"fromRevision,omitempty"`
}

func (r *record) deployment() events.Deployment {
	d := events.Deployment{
		Cluster: r.Cluster, Environment: r.Environment, AppID: r.AppID,
		FromImage: r.FromImage, ToImage: r.ToImage, Digest: r.Digest,
		Platform: r.platform(), DeploymentID: r.DeploymentID, Revision: r.revision(), Notify: r.Notify,
		Action: r.Action, Actor: r.Actor,
	}
	if d.Platform == config.ClusterMarathon {
		// Kept for the consumers written before there were other platforms.
		d.MarathonDeploymentID, d.MarathonVersion = r.DeploymentID, r.revision()
	}
	return d
}

func (r *record) platform() string {
	if r.Platform == "" {
		return config.ClusterMarathon
	}
	return r.Platform
}

func (r *record) revision() string {
	if r.Revision == "" {
		return r.MarathonVersion
	}
	return r.Revision
}

// store keeps deployment records and app leases.
type store struct {
	state jetstream.KeyValue
	locks jetstream.KeyValue
	inv   *inventory.Store
}

func openStore(ctx context.Context, js jetstream.JetStream, replicas int, keep time.Duration) (*store, error) {
	state, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "Slipway deployer: the phase of each (cluster, app, image) deployment",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		// As long as the events that could be redelivered exist.
		TTL: keep,
	})
	if err != nil {
		return nil, fmt.Errorf("state bucket: %w", err)
	}
	locks, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LockBucket,
		Description: "Slipway deployer: leases on apps being updated",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		TTL:         lockTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("lock bucket: %w", err)
	}
	inv, err := inventory.Open(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	return &store{state: state, locks: locks, inv: inv}, nil
}

func stateKey(cluster, appID, image string) string {
	return cluster + "." + events.ID(appID, image)
}

// get returns the record and its revision; nil when there is none.
func (s *store) get(ctx context.Context, key string) (*record, uint64, error) {
	e, err := s.state.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("state %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// create stores a new record; false when another one got there first.
func (s *store) create(ctx context.Context, key string, r *record) (uint64, bool, error) {
	b, _ := json.Marshal(r)
	rev, err := s.state.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, nil
	}
	return rev, err == nil, err
}

// update stores r if the record is still at rev: a compare-and-set, so a
// stale writer cannot overwrite a later phase.
func (s *store) update(ctx context.Context, key string, r *record, rev uint64) (uint64, error) {
	b, _ := json.Marshal(r)
	return s.state.Update(ctx, key, b, rev)
}

// errBusy means another deployer holds the app's lease; the event is
// retried later.
var errBusy = errors.New("app is being updated by another deployer")

// lock takes the lease on an app and keeps renewing it until the returned
// release is called. A lease left by a crashed deployer expires after
// lockTTL.
func (s *store) lock(ctx context.Context, cluster, appID string) (release func(), err error) {
	key := "lock." + inventory.Key(cluster, appID)
	owner := events.ID(key, time.Now().String(), fmt.Sprint(rand.Int64()))
	rev, err := s.locks.Create(ctx, key, []byte(owner))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, errBusy
	}
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				// Renewing rewrites the key, restarting its age.
				if r, err := s.locks.Update(context.Background(), key, []byte(owner), rev); err == nil {
					rev = r
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		_ = s.locks.Delete(context.Background(), key, jetstream.LastRevision(rev))
	}, nil
}
