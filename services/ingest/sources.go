package ingest

import (
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
	"github.com/slipway-cd/slipway/services/ingest/auth"
	"github.com/slipway-cd/slipway/services/ingest/formats"
	"github.com/slipway-cd/slipway/services/ingest/resolve"
)

// destination is an environment a source's pushes go to.
type destination struct {
	environment string
	// registry is the environment's registry. Every event names its host,
	// whatever the payload says: a payload may name it only by the host
	// or an alias (see foreign).
	registry config.Registry
	// resolver asks the environment's registry for missing digests.
	resolver *resolve.Resolver
}

// sourceRoute sends the pushes of the images it selects to its destination.
type sourceRoute struct {
	images *match.Images
	dest   *destination
}

// source is one configured webhook endpoint, checked and ready to serve.
type source struct {
	name   string
	format string
	// dest is where every push goes (environment:); nil when the source
	// has routes, where the first that matches a push decides.
	dest   *destination
	routes []sourceRoute
	// repositoryPath puts the payload's repository key in front of the
	// repository (Artifactory's repository-path access method).
	repositoryPath bool
	parse          formats.Parser
	auth           auth.Authenticator
	// limit bounds the deliveries per second; nil: no limit.
	limit *rate.Limiter
	// rejections are logged at most once per rejectLogEvery, with the
	// count since the last line: a flood of bad requests must not become
	// a flood of log lines (slipway_ingest_requests_total counts each).
	rejectLog rate.Sometimes
	rejected  atomic.Int64
	// Pushes naming a foreign registry are logged the same way.
	foreignLog rate.Sometimes
	foreign    atomic.Int64
	// And pushes no route matches.
	unroutedLog rate.Sometimes
	unrouted    atomic.Int64
}

// rejectLogEvery is the interval of the "webhook rejected" log line per
// source.
const rejectLogEvery = 10 * time.Second

// sourceName keeps names usable as one URL path segment and readable in
// metrics labels and the event source.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// compileSources checks ingest.sources against the formats and environments
// Slipway knows, and returns them by name. Errors carry the key path.
func compileSources(cfg *config.Config) (map[string]*source, error) {
	dests := destinations{cfg: cfg, byEnv: map[string]*destination{}}
	out := map[string]*source{}
	for i, s := range cfg.Ingest.Sources {
		key := fmt.Sprintf("ingest.sources[%d]", i)
		if !sourceName.MatchString(s.Name) {
			return nil, fmt.Errorf("%s.name %q: use letters, digits, '.', '_' and '-'", key, s.Name)
		}
		if _, dup := out[s.Name]; dup {
			return nil, fmt.Errorf("%s.name %q is used by another source", key, s.Name)
		}
		parse, err := formats.Lookup(s.Format)
		if err != nil {
			return nil, fmt.Errorf("%s.format: %w", key, err)
		}
		a, err := auth.New(s.Auth)
		switch {
		case errors.Is(err, auth.ErrRequired):
			return nil, fmt.Errorf("%s.%w", key, err)
		case err != nil:
			return nil, fmt.Errorf("%s.auth: %w", key, err)
		}
		src := &source{
			name:           s.Name,
			format:         s.Format,
			repositoryPath: s.RepositoryPath,
			parse:          parse,
			auth:           a,
			rejectLog:      rate.Sometimes{First: 1, Interval: rejectLogEvery},
			foreignLog:     rate.Sometimes{First: 1, Interval: rejectLogEvery},
			unroutedLog:    rate.Sometimes{First: 1, Interval: rejectLogEvery},
		}
		if (s.Environment == "") == (len(s.Routes) == 0) {
			return nil, fmt.Errorf("%s: set exactly one of environment or routes", key)
		}
		if s.Environment != "" {
			if src.dest, err = dests.get(key, key+".environment", s.Environment, s.Registry); err != nil {
				return nil, err
			}
		}
		for j, r := range s.Routes {
			rkey := fmt.Sprintf("%s.routes[%d]", key, j)
			if len(r.Repositories) == 0 {
				return nil, fmt.Errorf("%s.repositories: name at least one repository glob (\"**\" for every repository)", rkey)
			}
			images, probs := match.Compile(r.Repositories, r.Tags)
			if len(probs) > 0 {
				return nil, fmt.Errorf("%s.%s: %w", rkey, probs[0].Field, probs[0].Err)
			}
			d, err := dests.get(key, rkey+".environment", r.Environment, s.Registry)
			if err != nil {
				return nil, err
			}
			src.routes = append(src.routes, sourceRoute{images: images, dest: d})
		}
		out[s.Name] = src
		if s.RateLimit > 0 {
			burst := s.Burst
			if burst == 0 {
				burst = max(int(s.RateLimit), 1)
			}
			out[s.Name].limit = rate.NewLimiter(rate.Limit(s.RateLimit), burst)
		}
	}
	return out, nil
}

// destinations builds one destination per environment, shared by every
// source and route that names it (one resolver, one connection pool, per
// registry).
type destinations struct {
	cfg   *config.Config
	byEnv map[string]*destination
}

// get is the destination of environment name, named at key. registry is the
// source's (at srcKey) registry key, which must be a name of the
// environment's registry.
func (ds destinations) get(srcKey, key, name, registry string) (*destination, error) {
	env, ok := ds.cfg.Environment(name)
	if !ok {
		return nil, fmt.Errorf("%s: unknown environment %q (not in environments)", key, name)
	}
	if !events.ValidToken(name) {
		// It becomes a subject token; config checks should have caught it.
		return nil, fmt.Errorf("%s %q cannot be a NATS subject token", key, name)
	}
	if registry != "" && !env.Registry.Names(registry) {
		return nil, fmt.Errorf("%s.registry %q is not a name of environment %q's registry: declare it in its registry.aliases", srcKey, registry, env.Name)
	}
	if d, ok := ds.byEnv[name]; ok {
		return d, nil
	}
	r, err := resolve.New(env.Registry, ds.cfg.Ingest.ResolveTimeout)
	if err != nil {
		return nil, fmt.Errorf("environments %q: %w", env.Name, err)
	}
	d := &destination{environment: env.Name, registry: env.Registry, resolver: r}
	ds.byEnv[name] = d
	return d, nil
}
