// Package inventory is the record of what runs where: one entry per
// (cluster, workload) of every cluster (a Marathon app, a Docker
// container, a Swarm service), whether Slipway manages it (Managed, with
// its policy) or only records it for the auditor, kept in a JetStream KV
// bucket by the deployer and read by `slipway status` and `slipway where`.
// The entry of a workload that no longer exists is removed by the
// deployer's reconcile.
package inventory

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/services/deployer/policy"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Bucket is the KV bucket of the inventory.
const Bucket = "slipway-inventory"

// Record is what one app of one cluster runs.
type Record struct {
	// rev is the revision it was read at (0: made anew), for Put.
	rev         uint64
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	AppID       string `json:"appId"`
	// Managed tells whether Slipway manages the workload (its
	// slipway.policy label); an unmanaged one is recorded, never deployed
	// to, and has no policy.
	Managed bool `json:"managed"`
	// Image is the container image as the app definition writes it;
	// Registry, Repository and Tag are its parts (Docker Hub's images read
	// docker.io and library/…).
	Image      string `json:"image"`
	Registry   string `json:"registry,omitempty"`
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
	// Digest is the image's: the one its reference pins, the one the
	// deployment's event named, or, for a tag alone, the one the
	// environment's registry answered for the tag. Empty when unknown;
	// DigestReason then says why (a registry Slipway is not configured to
	// trust is never asked).
	Digest       string `json:"digest"`
	DigestReason string `json:"digestReason,omitempty"`
	Policy       string `json:"policy"`
	// Platform is the cluster's: marathon, docker or swarm.
	Platform string `json:"platform,omitempty"`
	// Revision is the platform's version of the workload: Marathon's app
	// version, Swarm's service version index, the container's id.
	Revision string `json:"revision,omitempty"`
	// MarathonVersion is Revision on Marathon clusters, as records written
	// before there were other platforms call it.
	MarathonVersion string `json:"marathonVersion,omitempty"`
	// Nodes are the hosts its instances run on (Marathon agents, Swarm
	// nodes, the Docker host); Wanted, Running and Healthy count them.
	Nodes   []string `json:"nodes,omitempty"`
	Wanted  int      `json:"wanted,omitempty"`
	Running int      `json:"running,omitempty"`
	Healthy int      `json:"healthy,omitempty"`
	// UpdatedAt is when Slipway last saw the app change to Image.
	UpdatedAt time.Time `json:"updatedAt"`
	// EventID is the event whose deployment put Image there; empty when
	// Slipway found the app running it.
	EventID string `json:"eventId,omitempty"`
	// PushedAt is when the running image was pushed, as far as Slipway
	// knows: later events with an older push are ignored.
	PushedAt time.Time `json:"pushedAt,omitempty"`
	// Drift is the image found running instead of Image, once reported.
	// Kept until the workload runs Image again or Slipway deploys to it.
	Drift string `json:"drift,omitempty"`
	// DriftDigest is the digest the workload runs while it drifted: the
	// one Drift pins, or the one the registry answered for Drift's tag (a
	// configured environment's registry only). Empty when unknown; cleared
	// with Drift. Digest stays the expected one: an auditor looking for
	// where a digest runs matches both.
	DriftDigest string `json:"driftDigest,omitempty"`
	// Refused is the last image pushed directly into an environment that
	// deploys only promoted images (accept: promoted) which this workload's
	// policy would have taken, and was not given. Cleared by the next
	// deployment to the workload.
	Refused *Refusal `json:"refused,omitempty"`
	// LeftManagement says why a workload Slipway managed is no longer
	// managed, once reported: "unlabelled" (its slipway.policy label was
	// removed) or "removed" (it no longer exists). Image stays what
	// Slipway expected there; the workload coming back labelled clears it.
	LeftManagement string `json:"leftManagement,omitempty"`
	// LastDeployment is Slipway's last deployment to the workload, in
	// progress or ended; nil when Slipway never deployed to it.
	LastDeployment *Deployment `json:"lastDeployment,omitempty"`
	// Previous are the images the workload ran before Image, as far as
	// Slipway's deployments took it from one to the next: the most recent
	// first, each once, at most MaxPrevious. A manual rollback goes back
	// to the first, or to one of them a person names.
	Previous []string `json:"previous,omitempty"`
}

// MaxPrevious bounds Record.Previous.
const MaxPrevious = 10

// Outcomes of a deployment, as Deployment.Outcome says.
const (
	InProgress = "in_progress"
	Succeeded  = "succeeded"
	Failed     = "failed"
	RolledBack = "rolled_back"
	Superseded = "superseded"
)

// Deployment is one deployment of Slipway's to a workload and what caused
// it: an auditor follows CauseID to the push or promotion, and sees who
// approved a promotion that needed it.
type Deployment struct {
	// FromImage is what the workload ran before (empty in records written
	// before it was kept).
	FromImage string `json:"fromImage,omitempty"`
	ToImage   string `json:"toImage"`
	// Outcome is in_progress, succeeded, failed, rolled_back or superseded.
	Outcome string `json:"outcome"`
	// At is when it began (in_progress) or ended.
	At time.Time `json:"at"`
	// EventID is the deployment event that announced Outcome
	// (deployment.started, .succeeded or .failed).
	EventID string `json:"eventId"`
	// CauseID is the image.pushed or image.promoted event it deployed, or
	// the action.requested event of a manual action.
	CauseID string `json:"causeId"`
	// ApprovalID and Approver name the approval of the promotion that
	// brought the image, when one was needed.
	ApprovalID string `json:"approvalId,omitempty"`
	Approver   string `json:"approver,omitempty"`
	// Action and Actor name the manual action (rollback, redeploy) a
	// person asked for, when the deployment was one.
	Action string `json:"action,omitempty"`
	Actor  string `json:"actor,omitempty"`
}

// complete fills in what derives from the rest: Managed (a record with a
// policy that has not left management is managed, as is every record
// written before unmanaged workloads were recorded), and the image's parts.
func (r *Record) complete() {
	r.Managed = r.Policy != "" && r.LeftManagement == ""
	if img, err := policy.ParseImage(r.Image); err == nil {
		r.Registry, r.Repository, r.Tag = img.Registry, img.Repository, img.Tag
		if r.Digest == "" && img.Digest != "" {
			r.Digest, r.DigestReason = img.Digest, ""
		}
	}
	switch {
	case r.Drift == "":
		r.DriftDigest = ""
	case r.DriftDigest == "":
		if img, err := policy.ParseImage(r.Drift); err == nil {
			r.DriftDigest = img.Digest
		}
	}
}

// Refusal is an image a workload was not given because it did not arrive
// through a Slipway promotion.
type Refusal struct {
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	// Actor is who pushed it, as the registry reported; empty when it
	// did not say.
	Actor string    `json:"actor,omitempty"`
	At    time.Time `json:"at"`
	// EventID is the deployment.refused event that announced it.
	EventID string `json:"eventId"`
	// Reason says why when it was not a direct push onto a cluster that
	// accepts only promoted images (absent then, as in older records).
	Reason string `json:"reason,omitempty"`
}

// WithWorkload fills in what the platform says of the workload now: its
// nodes and instance counts (and MarathonVersion for Marathon's readers).
func (r Record) WithWorkload(w *target.Workload) Record {
	if r.Platform == "marathon" || r.Platform == "" {
		r.MarathonVersion = r.Revision
	}
	if w == nil {
		return r
	}
	r.Nodes, r.Wanted, r.Running, r.Healthy = w.Nodes, w.Wanted, w.Running, w.Healthy
	return r
}

// Store reads and writes the inventory.
type Store struct{ kv jetstream.KeyValue }

// Open creates the bucket, or updates it to the replica count, and returns
// the store. Services that write call Open; readers use Bind.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Slipway: what runs where (cluster, workload, image)",
		History:     5,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("inventory bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Bind returns the store of an existing bucket.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("inventory bucket %s: %w (has a deployer run yet?)", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Key is the KV key of an app of a cluster. KV keys allow dots as token
// separators but app ids use "/" and may hold dots, so dots become "_"
// (never part of an id) and slashes become dots.
func Key(cluster, appID string) string {
	id := strings.Trim(appID, "/")
	id = strings.ReplaceAll(id, ".", "_")
	id = strings.ReplaceAll(id, "/", ".")
	return cluster + "." + id
}

// ErrChanged: the record was written by somebody else since it was read.
var ErrChanged = errors.New("the record changed since it was read")

// Put stores a record. A record read from the store (Get, GetKey) is
// written only if nobody wrote it since (ErrChanged otherwise): several
// writers change different fields of one record (a deployment's outcome,
// a refused push, the reconcile's counts and digest), and a stale copy
// written back would undo the others' change unseen. A record made anew
// is written as it is.
func (s *Store) Put(ctx context.Context, r Record) error {
	r.complete()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := Key(r.Cluster, r.AppID)
	if r.rev != 0 {
		_, err = s.kv.Update(ctx, key, b, r.rev)
	} else {
		_, err = s.kv.Put(ctx, key, b)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("inventory %s %s: %w", r.Cluster, r.AppID, ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("inventory %s %s: %w", r.Cluster, r.AppID, err)
	}
	return nil
}

// Modify changes the record of (cluster, appID) as it is now (exists
// false: there is none yet) and stores it, reading it again and retrying
// when somebody else wrote it in between.
func (s *Store) Modify(ctx context.Context, cluster, appID string, change func(r *Record, exists bool)) error {
	for attempt := 1; ; attempt++ {
		r, ok, err := s.Get(ctx, cluster, appID)
		if err != nil {
			return err
		}
		change(&r, ok)
		r.Cluster, r.AppID = cluster, appID
		r.complete()
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		key := Key(cluster, appID)
		if ok {
			_, err = s.kv.Update(ctx, key, b, r.rev)
		} else {
			_, err = s.kv.Create(ctx, key, b)
		}
		changed := errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
		if err == nil || !changed || attempt == 5 {
			if changed {
				err = ErrChanged
			}
			if err != nil {
				return fmt.Errorf("inventory %s %s: %w", cluster, appID, err)
			}
			return nil
		}
	}
}

// Get returns the record of an app, and whether there is one.
func (s *Store) Get(ctx context.Context, cluster, appID string) (Record, bool, error) {
	return s.GetKey(ctx, Key(cluster, appID))
}

// GetKey returns the record under a key (see Key and Keys), and whether
// there is one.
func (s *Store) GetKey(ctx context.Context, key string) (Record, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("inventory %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, false, fmt.Errorf("inventory %s: %w", key, err)
	}
	r.complete()
	r.rev = e.Revision()
	return r, true, nil
}

// Keys returns the keys of one cluster's records, without reading them:
// the deployer finds the workloads it recorded that a listing no longer
// shows. A cluster whose name holds dots may see another's keys too; the
// records say which cluster they are of.
func (s *Store) Keys(ctx context.Context, cluster string) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, cluster+".>")
	if err != nil {
		return nil, fmt.Errorf("inventory keys of %s: %w", cluster, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Delete forgets an app (it was removed from Marathon).
func (s *Store) Delete(ctx context.Context, cluster, appID string) error {
	err := s.kv.Delete(ctx, Key(cluster, appID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// List returns every record, sorted by cluster and app.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	// One watch delivers the last value of every key in a single pass,
	// where a listing of the keys and a Get of each costs a round trip per
	// record: at 5,000 records, about a tenth of the time.
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []Record
	for e := range w.Updates() {
		if e == nil { // every record there was when the watch began
			sortRecords(out)
			return out, nil
		}
		var r Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("inventory key %s: %w", e.Key(), err)
		}
		r.complete()
		out = append(out, r)
	}
	return nil, fmt.Errorf("inventory: the read of the bucket ended early: %w", cmp.Or(ctx.Err(), errors.New("watch closed")))
}

func sortRecords(out []Record) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].AppID < out[j].AppID
	})
}
