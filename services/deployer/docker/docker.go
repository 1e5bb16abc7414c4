package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/dockerapi"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Labels Slipway reads and writes on containers.
const (
	// LabelPolicy opts a container in; one without it is never touched.
	LabelPolicy = "slipway.policy"
	// LabelReplaces, on a container Slipway created, is the id of the
	// container it replaces.
	LabelReplaces = "slipway.replaces"
	// LabelReplacesImage is the image of the container it replaces.
	LabelReplacesImage = "slipway.replaces-image"
)

// Suffixes of the temporary names a recreate gives containers.
const (
	SuffixNext   = ".slipway-next"
	SuffixPrev   = ".slipway-prev"
	SuffixFailed = ".slipway-failed"
)

var suffixes = []string{SuffixNext, SuffixPrev, SuffixFailed}

// DefaultGrace is how long a recreated container without a HEALTHCHECK
// must run without restarting to count as healthy.
const DefaultGrace = 10 * time.Second

// pollEvery is how often Await reads the container besides the events
// that wake it: a missed event (a reconnect, an engine that filters
// differently) costs at most this long.
const pollEvery = 250 * time.Millisecond

// Target is a Docker Engine endpoint as a deploy target.
type Target struct {
	c        *client.Client
	endpoint string
	grace    time.Duration
	log      *slog.Logger

	// afterStep, when set (tests), runs after each step of a recreate or
	// rollback that changed the host; an error ends the operation there,
	// as a crash would.
	afterStep func(workload, step string) error

	mu   sync.Mutex
	node string // the engine's host name, once known
}

var _ target.Target = (*Target)(nil)

// CheckConfig checks a docker cluster's configuration (path is the
// cluster's key path, "clusters[0]").
func CheckConfig(cl config.Cluster, path string, p *config.Problems) {
	before := len(*p)
	dockerapi.CheckConfig(cl.Docker, path+".docker", p)
	if len(*p) == before {
		if _, err := dockerapi.New(cl.Docker); err != nil {
			p.Add(path+".docker", "%v", err)
		}
	}
}

// Option changes a Target that Open makes.
type Option func(*Target)

// WithStepHook is for tests: hook runs after each step of a recreate or
// rollback that changed the host, with the workload and the step's name
// ("pull", "create", "stop-old", "rename-old", "rename-new", "start-new",
// "remove-old", "remove-stale"; a rollback's "stop-new", "rename-failed",
// "restore-old", "start-old", "remove-failed"). An error it returns ends
// the operation right there, standing in for a crash: the step is done,
// the next is not, and Await does not carry on past it.
func WithStepHook(hook func(workload, step string) error) Option {
	return func(t *Target) { t.afterStep = hook }
}

// Open returns the Target of a docker cluster. It does not contact the
// engine: a host that is down when the deployer starts must not keep it
// from starting; List and Get fail until the host answers.
func Open(cl config.Cluster, o target.Options, opts ...Option) (target.Target, error) {
	t, err := open(cl, o)
	if err != nil {
		return nil, err
	}
	for _, opt := range opts {
		opt(t)
	}
	return t, nil
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
	grace := cl.Docker.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &Target{
		c:        c,
		endpoint: config.RedactURL(cl.Docker.Host),
		grace:    grace,
		log:      log.With("cluster", cl.Name, "endpoint", config.RedactURL(cl.Docker.Host)),
	}, nil
}

// Endpoint is the engine's address.
func (t *Target) Endpoint() string { return t.endpoint }

// Close releases the client's connections.
func (t *Target) Close() error { return dockerapi.Close(t.c) }

// workloadName maps a container name (with or without the leading "/") to
// the workload it belongs to: temporary names map to their workload.
func workloadName(name string) string {
	name = strings.TrimPrefix(name, "/")
	for _, s := range suffixes {
		if n, ok := strings.CutSuffix(name, s); ok && n != "" {
			return n
		}
	}
	return name
}

func isTemporary(name string) bool { return workloadName(name) != strings.TrimPrefix(name, "/") }

// hostState is what the host holds under a workload's four names. Every
// operation reads it first and continues from there.
type hostState struct {
	name                    string
	cur, next, prev, failed *container.InspectResponse
}

// managed tells whether any of the containers carries the opt-in label.
func (s hostState) managed() bool {
	for _, c := range s.all() {
		if _, ok := c.Config.Labels[LabelPolicy]; ok {
			return true
		}
	}
	return false
}

func (s hostState) all() []*container.InspectResponse {
	var out []*container.InspectResponse
	for _, c := range []*container.InspectResponse{s.cur, s.next, s.prev, s.failed} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// placed is the current container when it is the replacement of prev
// (steps 5 and 6 done, not yet confirmed healthy).
func (s hostState) placed() *container.InspectResponse {
	if s.cur != nil && s.prev != nil && s.cur.Config.Labels[LabelReplaces] == s.prev.ID {
		return s.cur
	}
	return nil
}

// newest is the container a recreate in progress brings in: at the
// temporary name or already placed.
func (s hostState) newest() *container.InspectResponse {
	if s.next != nil {
		return s.next
	}
	return s.placed()
}

// old is the container a recreate in progress replaces.
func (s hostState) old() *container.InspectResponse {
	if s.prev != nil {
		return s.prev
	}
	return s.cur
}

func (t *Target) inspect(ctx context.Context, name string) (*container.InspectResponse, error) {
	c, err := t.c.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	// The engine finds a container by a unique prefix of its id as well as
	// by its name; only the name counts here.
	if strings.TrimPrefix(c.Name, "/") != name {
		return nil, nil
	}
	return &c, nil
}

func (t *Target) read(ctx context.Context, name string) (hostState, error) {
	s := hostState{name: name}
	for _, x := range []struct {
		p    **container.InspectResponse
		name string
	}{{&s.cur, name}, {&s.next, name + SuffixNext}, {&s.prev, name + SuffixPrev}, {&s.failed, name + SuffixFailed}} {
		c, err := t.inspect(ctx, x.name)
		if err != nil {
			return s, err
		}
		*x.p = c
	}
	return s, nil
}

// List returns every container, with or without the slipway.policy
// label, one workload per name (the temporary containers of a recreate
// belong to their workload).
func (t *Target) List(ctx context.Context) ([]target.Workload, error) {
	// The client reads the API version it negotiates to encode the
	// filters, before its request would negotiate it: negotiate first, or
	// this read races with another goroutine's first request.
	if _, err := t.nodeName(ctx); err != nil {
		return nil, err
	}
	cs, err := t.c.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var names []string
	for _, c := range cs {
		if len(c.Names) == 0 {
			continue
		}
		if n := workloadName(c.Names[0]); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]target.Workload, 0, len(names))
	for _, n := range names {
		w, err := t.Get(ctx, n)
		if errors.Is(err, target.ErrNotFound) {
			continue // removed since the list
		}
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// Get reads the workload name, with or without the slipway.policy label
// (Update and RollBack refuse a container without it). In the middle of a
// recreate or rollback it reports the container the operation brings under
// the name, with the operation in Rollouts.
func (t *Target) Get(ctx context.Context, name string) (target.Workload, error) {
	if name == "" || isTemporary(name) {
		return target.Workload{}, fmt.Errorf("container %q: %w", name, target.ErrNotFound)
	}
	s, err := t.read(ctx, name)
	if err != nil {
		return target.Workload{}, err
	}
	if len(s.all()) == 0 {
		return target.Workload{}, fmt.Errorf("container %s: %w", name, target.ErrNotFound)
	}
	node, err := t.nodeName(ctx)
	if err != nil {
		return target.Workload{}, err
	}
	// The workload is the container under the name; while no container
	// bears it (mid-rename), the one the operation in progress brings.
	var c *container.InspectResponse
	var rollout string
	switch {
	case s.failed != nil:
		// A rollback: the old container comes back under the name.
		c = s.cur
		if c == nil {
			c = s.prev
		}
	case s.cur != nil:
		c = s.cur
		if n := s.newest(); n != nil {
			rollout = n.ID
		}
	case s.next != nil:
		c = s.next
	default:
		// Only an old container renamed away: an interrupted operation
		// (or a hand) left it; Update and RollBack put it back.
		c = s.prev
	}
	if c == nil {
		c = s.all()[0]
	}
	if rollout == "" && (c != s.cur || s.failed != nil) {
		rollout = c.ID
	}
	w := target.Workload{
		ID:       name,
		Image:    c.Config.Image,
		Labels:   c.Config.Labels,
		Revision: c.ID,
		Wanted:   1,
		Nodes:    []string{node},
	}
	if rollout != "" {
		w.Rollouts = []string{rollout}
	}
	// Only the container under the name serves the workload.
	if c == s.cur && c.State != nil && c.State.Running && !c.State.Restarting {
		w.Running = 1
		if h := c.State.Health; h == nil || h.Status == container.Healthy {
			w.Healthy = 1
		}
	}
	return w, nil
}

// nodeName is the engine's host name (Info.Name), read once. Once it
// returns, the client has negotiated its API version: calls that read the
// version before their request (a list or events with filters) are safe
// from then on.
func (t *Target) nodeName(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.node != "" {
		return t.node, nil
	}
	info, err := t.c.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("engine info: %w", err)
	}
	t.node = info.Name
	return t.node, nil
}
