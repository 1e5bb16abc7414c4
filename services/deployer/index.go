package deployer

import (
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-cd/slipway/services/deployer/policy"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Workload labels of the contract (Marathon app labels, Docker container
// labels, Swarm service labels).
const (
	LabelPolicy  = "slipway.policy"
	LabelNotify  = "slipway.notify"
	LabelTimeout = "slipway.timeout"
)

// managedApp is an app that opted in, as the index knows it.
type managedApp struct {
	id      string
	image   policy.Image // normalised
	written string       // the image as the app definition writes it
	policy  policy.Policy
	notify  string
	timeout time.Duration // 0: the cluster's
}

// index finds a cluster's opted-in apps by image repository without
// scanning every app per event. The event stream keeps it fresh; a full
// listing rebuilds it periodically and after every reconnect.
type index struct {
	log *slog.Logger
	// registry is the host of the cluster's environment's registry: the
	// cluster manages the apps that run images from it. One Marathon may
	// serve several environments (dev and tst on one integration
	// cluster); each environment's entry then sees only its own apps.
	registry string
	mu       sync.RWMutex
	byRepo   map[string]map[string]*managedApp // RepoKey → app id → app
	byID     map[string]*managedApp
	// warned remembers apps with a bad label, so the log says so once.
	warned map[string]string
}

func newIndex(log *slog.Logger, registryHost string) *index {
	x := &index{log: log, byRepo: map[string]map[string]*managedApp{}, byID: map[string]*managedApp{}, warned: map[string]string{}}
	if img, err := policy.ParseImage(registryHost + "/x"); err == nil && registryHost != "" {
		x.registry = img.Registry
	}
	return x
}

// managed reads an app's labels and image; nil when the app did not opt in
// (no slipway.policy label: never touched) or cannot be managed.
func (x *index) managed(a target.Workload) *managedApp {
	label, ok := a.Labels[LabelPolicy]
	if !ok {
		return nil
	}
	warn := func(msg string, err error) *managedApp {
		key := msg + err.Error()
		x.mu.Lock()
		seen := x.warned[a.ID] == key
		x.warned[a.ID] = key
		x.mu.Unlock()
		if !seen {
			x.log.Warn(msg+"; the app is left alone", "app", a.ID, "error", err)
		}
		return nil
	}
	p, err := policy.Parse(label)
	if err != nil {
		return warn("bad "+LabelPolicy+" label", err)
	}
	written := a.Image
	img, err := policy.ParseImage(written)
	if err != nil {
		return warn("app image cannot be parsed", err)
	}
	if x.registry != "" && img.Registry != x.registry {
		return nil // another environment's app on the same Marathon
	}
	m := &managedApp{id: a.ID, image: img, written: written, policy: p, notify: a.Labels[LabelNotify]}
	if t, ok := a.Labels[LabelTimeout]; ok {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			x.log.Warn("bad "+LabelTimeout+" label; using the cluster's timeout", "app", a.ID, "value", t)
		} else {
			m.timeout = d
		}
	}
	return m
}

// replaceAll rebuilds the index from a full listing.
func (x *index) replaceAll(apps []target.Workload) {
	byRepo := map[string]map[string]*managedApp{}
	byID := map[string]*managedApp{}
	for _, a := range apps {
		if m := x.managed(a); m != nil {
			add(byRepo, byID, m)
		}
	}
	x.mu.Lock()
	x.byRepo, x.byID = byRepo, byID
	x.mu.Unlock()
}

// upsert records one app's new definition.
func (x *index) upsert(a target.Workload) {
	m := x.managed(a)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(a.ID)
	if m != nil {
		add(x.byRepo, x.byID, m)
	}
}

func (x *index) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(id)
}

func (x *index) removeLocked(id string) {
	old, ok := x.byID[id]
	if !ok {
		return
	}
	delete(x.byID, id)
	key := old.image.RepoKey()
	delete(x.byRepo[key], id)
	if len(x.byRepo[key]) == 0 {
		delete(x.byRepo, key)
	}
}

func add(byRepo map[string]map[string]*managedApp, byID map[string]*managedApp, m *managedApp) {
	key := m.image.RepoKey()
	if byRepo[key] == nil {
		byRepo[key] = map[string]*managedApp{}
	}
	byRepo[key][m.id] = m
	byID[m.id] = m
}

// lookup returns the opted-in apps that run repository repoKey.
func (x *index) lookup(repoKey string) []managedApp {
	x.mu.RLock()
	defer x.mu.RUnlock()
	apps := x.byRepo[repoKey]
	out := make([]managedApp, 0, len(apps))
	for _, m := range apps {
		out = append(out, *m)
	}
	return out
}

// all returns every opted-in app.
func (x *index) all() []managedApp {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]managedApp, 0, len(x.byID))
	for _, m := range x.byID {
		out = append(out, *m)
	}
	return out
}
