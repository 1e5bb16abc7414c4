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
	"github.com/slipway-cd/slipway/services/ingest/auth"
	"github.com/slipway-cd/slipway/services/ingest/formats"
	"github.com/slipway-cd/slipway/services/ingest/resolve"
)

// source is one configured webhook endpoint, checked and ready to serve.
type source struct {
	name        string
	format      string
	environment string
	// registry is the environment's registry. Every event names its host,
	// whatever the payload says: a payload may name it only by the host
	// or an alias (see foreign).
	registry config.Registry
	// repositoryPath puts the payload's repository key in front of the
	// repository (Artifactory's repository-path access method).
	repositoryPath bool
	parse          formats.Parser
	auth           auth.Authenticator
	// resolver asks the environment's registry for missing digests.
	resolver *resolve.Resolver
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
	envs := map[string]config.Environment{}
	for _, e := range cfg.Environments {
		envs[e.Name] = e
	}
	resolvers := map[string]*resolve.Resolver{}
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
		env, ok := envs[s.Environment]
		if !ok {
			return nil, fmt.Errorf("%s.environment: unknown environment %q (not in environments)", key, s.Environment)
		}
		if !events.ValidToken(s.Environment) {
			// It becomes a subject token; config checks should have caught it.
			return nil, fmt.Errorf("%s.environment %q cannot be a NATS subject token", key, s.Environment)
		}
		a, err := auth.New(s.Auth)
		switch {
		case errors.Is(err, auth.ErrRequired):
			return nil, fmt.Errorf("%s.%w", key, err)
		case err != nil:
			return nil, fmt.Errorf("%s.auth: %w", key, err)
		}
		if s.Registry != "" && !env.Registry.Names(s.Registry) {
			return nil, fmt.Errorf("%s.registry %q is not a name of environment %q's registry: declare it in its registry.aliases", key, s.Registry, env.Name)
		}
		r, ok := resolvers[env.Name]
		if !ok {
			if r, err = resolve.New(env.Registry, cfg.Ingest.ResolveTimeout); err != nil {
				return nil, fmt.Errorf("environments %q: %w", env.Name, err)
			}
			resolvers[env.Name] = r
		}
		out[s.Name] = &source{
			name:           s.Name,
			format:         s.Format,
			environment:    s.Environment,
			registry:       env.Registry,
			repositoryPath: s.RepositoryPath,
			parse:          parse,
			auth:           a,
			resolver:       r,
			rejectLog:      rate.Sometimes{First: 1, Interval: rejectLogEvery},
			foreignLog:     rate.Sometimes{First: 1, Interval: rejectLogEvery},
		}
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
