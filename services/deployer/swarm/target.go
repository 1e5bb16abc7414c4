// Package swarm deploys on a Docker Swarm: the deployer's client talks to
// a manager, the workloads are Swarm services (a service's name is its
// workload id) and a rollout is a service update, which Swarm carries out
// with the service's own update_config and rollback_config.
//
// A service opts in with the service label slipway.policy (the spec's
// labels, not the labels of its containers). Swarm keeps all the state
// Slipway needs on the service itself: the version index (optimistic
// concurrency for updates), the update status (updating, paused,
// completed, rollback_started, rollback_paused, rollback_completed) and the
// previous spec a rollback returns to. So every step reads the service
// again and a deployer that crashed finds how far it got.
package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// policyLabel is the service label that opts a service in.
const policyLabel = "slipway.policy"

// minAPIVersion is the oldest API with the service update's rollback
// parameter and the rollback failure action.
const minAPIVersion = "1.28"

// Target is a Docker Swarm as a deploy target.
type Target struct {
	c    *client.Client
	host string
	log  *slog.Logger
	poll time.Duration

	// hostnames caches node id → hostname: nodes come and go far less
	// often than workloads are read.
	mu        sync.Mutex
	hostnames map[string]string
}

var _ target.Target = (*Target)(nil)

// CheckConfig checks a swarm cluster (path is its key path,
// "clusters[0]"): the docker block, and what Swarm needs beyond it.
func CheckConfig(cl config.Cluster, path string, p *config.Problems) {
	dockerapi.CheckConfig(cl.Docker, path+".docker", p)
	if v := cl.Docker.APIVersion; v != "" && versionLess(v, minAPIVersion) {
		p.Add(path+".docker.apiVersion", "%q is older than %s, the first with Swarm's rollback (a swarm cluster needs it)", v, minAPIVersion)
	}
	if cl.Docker.Grace != 0 {
		p.Add(path+".docker.grace", "applies to clusters of type docker; Swarm judges its tasks by their health checks and the service's update_config.monitor")
	}
}

// versionLess compares API versions "1.x"; a malformed one is the docker
// block's problem, reported there.
func versionLess(v, than string) bool {
	minor := func(s string) int {
		if len(s) < 3 || s[:2] != "1." {
			return -1
		}
		n, err := strconv.Atoi(s[2:])
		if err != nil {
			return -1
		}
		return n
	}
	a, b := minor(v), minor(than)
	return a >= 0 && a < b
}

// Open returns the Target of the cluster's docker block. It does not
// contact the manager: one that is down at start is reached later.
func Open(cl config.Cluster, o target.Options) (target.Target, error) {
	return open(cl, o)
}

func open(cl config.Cluster, o target.Options, opts ...dockerapi.Option) (*Target, error) {
	c, err := dockerapi.New(cl.Docker, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Target{
		c: c, host: config.RedactURL(cl.Docker.Host), log: log,
		poll: awaitPoll, hostnames: map[string]string{},
	}, nil
}

// Close closes the Target's client.
func (t *Target) Close() error { return dockerapi.Close(t.c) }

// Endpoint is the manager's address.
func (t *Target) Endpoint() string { return t.host }

// List returns every service that runs containers, with or without a
// slipway.policy label (Update and RollBack refuse one without it).
func (t *Target) List(ctx context.Context) ([]target.Workload, error) {
	if err := dockerapi.Ready(ctx, t.c); err != nil {
		return nil, err
	}
	services, err := t.c.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	services = slices.DeleteFunc(services, func(s swarm.Service) bool {
		return s.Spec.TaskTemplate.ContainerSpec == nil // a plugin service
	})
	if len(services) == 0 {
		return nil, nil
	}
	ids := make([]string, len(services))
	for i, s := range services {
		ids[i] = s.ID
	}
	tasks, err := t.tasks(ctx, ids...)
	if err != nil {
		return nil, err
	}
	out := make([]target.Workload, 0, len(services))
	for _, s := range services {
		out = append(out, t.workload(ctx, s, tasks[s.ID]))
	}
	return out, nil
}

// Get reads one service.
func (t *Target) Get(ctx context.Context, id string) (target.Workload, error) {
	if err := dockerapi.Ready(ctx, t.c); err != nil {
		return target.Workload{}, err
	}
	s, tasks, err := t.read(ctx, id)
	if err != nil {
		return target.Workload{}, err
	}
	return t.workload(ctx, s, tasks), nil
}

// inspect reads a service; ErrNotFound when there is none of that name.
func (t *Target) inspect(ctx context.Context, id string) (swarm.Service, error) {
	s, _, err := t.c.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return s, fmt.Errorf("service %s: %w", id, target.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("inspect service %s: %w", id, err)
	}
	if s.Spec.TaskTemplate.ContainerSpec == nil {
		return s, fmt.Errorf("service %s runs no container (a plugin service): %w", id, target.ErrNotFound)
	}
	return s, nil
}

// read inspects a service and lists its current tasks.
func (t *Target) read(ctx context.Context, id string) (swarm.Service, []swarm.Task, error) {
	if err := dockerapi.Ready(ctx, t.c); err != nil {
		return swarm.Service{}, nil, err
	}
	s, err := t.inspect(ctx, id)
	if err != nil {
		return s, nil, err
	}
	tasks, err := t.tasks(ctx, s.ID)
	if err != nil {
		return s, nil, err
	}
	return s, tasks[s.ID], nil
}

// tasks lists the tasks Swarm wants running of the services, by service
// id. Tasks it is shutting down (an update replaced them) do not count.
func (t *Target) tasks(ctx context.Context, serviceIDs ...string) (map[string][]swarm.Task, error) {
	f := filters.NewArgs(filters.Arg("desired-state", string(swarm.TaskStateRunning)))
	for _, id := range serviceIDs {
		f.Add("service", id)
	}
	list, err := t.c.TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	out := map[string][]swarm.Task{}
	for _, tk := range list {
		out[tk.ServiceID] = append(out[tk.ServiceID], tk)
	}
	return out, nil
}

// counts are a service's tasks as the deployer judges them.
type counts struct {
	wanted, running int
	nodes           []string // node ids of the running tasks
}

// count judges the tasks Swarm wants running against the service's spec.
// Swarm reports a task running only once its container's health check
// (if any) passed, and fails it when the check fails later, so running
// tasks are the healthy ones.
func count(s swarm.Service, tasks []swarm.Task) counts {
	var c counts
	image := specImage(s.Spec)
	var desiredNodes []string
	for _, tk := range tasks {
		if tk.DesiredState != swarm.TaskStateRunning {
			continue
		}
		if !slices.Contains(desiredNodes, tk.NodeID) {
			desiredNodes = append(desiredNodes, tk.NodeID)
		}
		if tk.Status.State != swarm.TaskStateRunning || tk.Spec.ContainerSpec == nil || tk.Spec.ContainerSpec.Image != image {
			continue
		}
		c.running++
		if !slices.Contains(c.nodes, tk.NodeID) {
			c.nodes = append(c.nodes, tk.NodeID)
		}
	}
	switch m := s.Spec.Mode; {
	case m.Replicated != nil:
		c.wanted = 1
		if m.Replicated.Replicas != nil {
			c.wanted = int(*m.Replicated.Replicas)
		}
	case m.Global != nil:
		// One task per eligible node: the nodes Swarm scheduled one on.
		c.wanted = len(desiredNodes)
	}
	return c
}

func (c counts) converged() bool { return c.running >= c.wanted }

func specImage(spec swarm.ServiceSpec) string {
	if spec.TaskTemplate.ContainerSpec == nil {
		return ""
	}
	return spec.TaskTemplate.ContainerSpec.Image
}

func revision(s swarm.Service) string { return strconv.FormatUint(s.Version.Index, 10) }

func state(s swarm.Service) swarm.UpdateState {
	if s.UpdateStatus == nil {
		return ""
	}
	return s.UpdateStatus.State
}

func message(s swarm.Service) string {
	if s.UpdateStatus == nil {
		return ""
	}
	return s.UpdateStatus.Message
}

// inProgress tells whether Swarm is in the middle of an update or a
// rollback of the service. Right after an update call Swarm has reset the
// update status and its updater has not yet written one: a changed image
// that the tasks do not run yet is an update about to begin.
func inProgress(s swarm.Service, c counts) bool {
	switch state(s) {
	case swarm.UpdateStateUpdating, swarm.UpdateStateRollbackStarted:
		return true
	case "":
		return s.PreviousSpec != nil && specImage(*s.PreviousSpec) != specImage(s.Spec) && !c.converged()
	}
	return false
}

func (t *Target) workload(ctx context.Context, s swarm.Service, tasks []swarm.Task) target.Workload {
	c := count(s, tasks)
	w := target.Workload{
		ID:       s.Spec.Name,
		Image:    specImage(s.Spec),
		Labels:   s.Spec.Labels,
		Revision: revision(s),
		Wanted:   c.wanted,
		Running:  c.running,
		Healthy:  c.running,
	}
	if inProgress(s, c) {
		w.Rollouts = []string{rolloutOf(s)}
	}
	for _, id := range c.nodes {
		w.Nodes = append(w.Nodes, t.hostname(ctx, id))
	}
	slices.Sort(w.Nodes)
	return w
}

// hostname names a node by its hostname, or by its id when the manager
// cannot say.
func (t *Target) hostname(ctx context.Context, id string) string {
	t.mu.Lock()
	h, ok := t.hostnames[id]
	t.mu.Unlock()
	if ok {
		return h
	}
	n, _, err := t.c.NodeInspectWithRaw(ctx, id)
	if err != nil || n.Description.Hostname == "" {
		t.log.Debug("node has no hostname to show", "node", id, "error", err)
		return id
	}
	t.mu.Lock()
	t.hostnames[id] = n.Description.Hostname
	t.mu.Unlock()
	return n.Description.Hostname
}

// labelled refuses services without the opt-in label: Slipway never
// changes them, whatever it is asked.
func labelled(s swarm.Service) error {
	if _, ok := s.Spec.Labels[policyLabel]; !ok {
		return fmt.Errorf("service %s has no %s label: Slipway does not change it", s.Spec.Name, policyLabel)
	}
	return nil
}

// conflict tells whether the manager refused a change for a stale
// version index.
func conflict(err error) bool {
	return err != nil && (cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "update out of sequence"))
}
