// Package digests finds the digest a tag-only image reference stands for,
// for the inventory: one HEAD on the manifest in the registry, asked only
// of the configured environments' registries (their hosts and aliases,
// with their credentials and TLS setting). An image of any other host is
// never looked up: a workload's image names any host its author wrote, and
// the deployer must not send requests, let alone credentials, to a
// registry nobody configured. Answers are cached for a while, so a
// reconcile over thousands of workloads asks each tag once.
package digests

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
)

// Defaults for Options.
const (
	DefaultTTL     = 5 * time.Minute
	DefaultMaxSize = 10000
	DefaultTimeout = 5 * time.Second
	// DefaultDownFor is how long a registry that did not answer is not
	// asked again.
	DefaultDownFor = 30 * time.Second
)

// Options tune a Resolver.
type Options struct {
	// TTL is how long an answer (a digest or a failure) is reused.
	TTL time.Duration
	// MaxSize bounds the cache; the least recently used answer goes first.
	MaxSize int
	// Timeout bounds one HEAD.
	Timeout time.Duration
	// DownFor is how long a registry that did not answer at all (no
	// connection, or no answer within Timeout) is not asked again: one
	// timeout per registry, not one per tag of a pass over thousands of
	// workloads.
	DownFor time.Duration
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Result is what the inventory records of an image's digest.
type Result struct {
	// Digest is algorithm:hex; empty when unknown.
	Digest string
	// Reason says why Digest is empty.
	Reason string
}

// Resolver looks tags up. It is safe for concurrent use.
type Resolver struct {
	access *oci.Access
	o      Options

	mu    sync.Mutex
	cache map[string]*list.Element // normalised reference → entry
	lru   *list.List               // front: most recently used
	down  map[string]time.Time     // host → when it may be asked again
}

type entry struct {
	ref string
	res Result
	at  time.Time
}

// New returns a resolver for the environments' registries. Each alias of
// a registry is reached with the registry's credentials and TLS setting.
func New(envs []config.Environment, o Options) *Resolver {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	regs := Registries(envs)
	if o.DownFor <= 0 {
		o.DownFor = DefaultDownFor
	}
	return &Resolver{access: oci.NewAccess(regs), o: o, cache: map[string]*list.Element{}, lru: list.New(), down: map[string]time.Time{}}
}

// Registries are the environments' registries, each alias with its
// registry's credentials and TLS setting: the only registries the
// deployer asks anything.
func Registries(envs []config.Environment) []config.Registry {
	var regs []config.Registry
	for _, e := range envs {
		if e.Registry.Host == "" {
			continue
		}
		regs = append(regs, e.Registry)
		for _, a := range e.Registry.Aliases {
			alias := e.Registry
			alias.Host, alias.Aliases = a, nil
			regs = append(regs, alias)
		}
	}
	return regs
}

// Resolve returns the digest image runs: the one its reference pins, or
// the one its registry answers for its tag when that registry is a
// configured one.
func (r *Resolver) Resolve(ctx context.Context, image string) Result {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return Result{Reason: fmt.Sprintf("the image reference cannot be parsed: %v", err)}
	}
	if d, ok := ref.(name.Digest); ok {
		return Result{Digest: d.DigestStr()}
	}
	host := ref.Context().RegistryStr()
	if !r.access.Configured(host) {
		return Result{Reason: fmt.Sprintf("registry %s is not a configured environment's registry: not asked", host)}
	}
	key := ref.Name()
	if res, ok := r.cached(key); ok {
		return res
	}
	if until, down := r.isDown(host); down {
		return Result{Reason: fmt.Sprintf("registry %s did not answer; not asked again before %s", host, until.UTC().Format(time.RFC3339))}
	}
	res, answered := r.head(ctx, image, host)
	if ctx.Err() != nil {
		return res // cut short by the caller: not the registry's answer
	}
	if !answered {
		r.markDown(host)
		return res // not the registry's answer either: not cached per tag
	}
	r.store(key, res)
	return res
}

// Asks tells whether Resolve asks a registry about image: a tag alone, of
// a configured registry.
func (r *Resolver) Asks(image string) bool {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return false
	}
	_, pinned := ref.(name.Digest)
	return !pinned && r.access.Configured(ref.Context().RegistryStr())
}

// head asks the registry; answered is false when it did not answer at all
// (an answer of 404 or 401 is an answer).
func (r *Resolver) head(ctx context.Context, image, host string) (res Result, answered bool) {
	ref, err := name.ParseReference(image, append(r.access.NameOptions(host), name.WeakValidation)...)
	if err != nil {
		return Result{Reason: fmt.Sprintf("the image reference cannot be parsed: %v", err)}, true
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	d, err := remote.Head(ref,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.access.Keychain()),
		remote.WithTransport(r.access.Transport(host)),
		remote.WithUserAgent("slipway-deployer"),
	)
	var answer *transport.Error
	if err != nil && !errors.As(err, &answer) {
		return Result{Reason: fmt.Sprintf("registry %s did not answer: %v", host, r.access.Scrub(err))}, false
	}
	if err != nil {
		return Result{Reason: "the registry did not resolve the tag: " + r.access.Scrub(err).Error()}, true
	}
	return Result{Digest: d.Digest.String()}, true
}

func (r *Resolver) isDown(host string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.down[host]
	if ok && !r.o.Now().Before(until) {
		delete(r.down, host)
		return time.Time{}, false
	}
	return until, ok
}

func (r *Resolver) markDown(host string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[host] = r.o.Now().Add(r.o.DownFor)
}

func (r *Resolver) cached(key string) (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.cache[key]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*entry)
	if r.o.Now().Sub(e.at) >= r.o.TTL {
		r.lru.Remove(el)
		delete(r.cache, key)
		return Result{}, false
	}
	r.lru.MoveToFront(el)
	return e.res, true
}

func (r *Resolver) store(key string, res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.cache[key]; ok {
		el.Value = &entry{ref: key, res: res, at: r.o.Now()}
		r.lru.MoveToFront(el)
		return
	}
	r.cache[key] = r.lru.PushFront(&entry{ref: key, res: res, at: r.o.Now()})
	for r.lru.Len() > r.o.MaxSize {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.cache, old.Value.(*entry).ref)
	}
}

// Len is how many answers the cache holds.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}
