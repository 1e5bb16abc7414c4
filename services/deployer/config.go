package deployer

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer/docker"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
	"github.com/slipway-cd/slipway/services/deployer/swarm"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Defaults of the deployer's part of the file, applied where the deployer
// reads it: a Config built in Go, with none of them set, deploys as a
// loaded file that sets none does.
const (
	DefaultDeployTimeout     = 10 * time.Minute
	DefaultSyncInterval      = 5 * time.Minute
	DefaultReconcileInterval = 30 * time.Second
	DefaultPollInterval      = 5 * time.Second
	DefaultDeployConcurrency = 16
)

// platform is one kind of cluster the deployer drives. Adding one is its
// package (a target.Target, and a CheckConfig for its block of a cluster)
// and one entry in platforms.
type platform struct {
	// check checks the platform's block of the cluster at path
	// ("clusters[0]").
	check func(cl config.Cluster, path string, p *config.Problems)
	// open makes the cluster's target.
	open func(s *Service, cl config.Cluster, o target.Options) (target.Target, error)
}

// platforms are the kinds of cluster this build drives, by clusters[].type.
var platforms = map[string]platform{
	config.ClusterMarathon: {
		check: func(cl config.Cluster, path string, p *config.Problems) {
			marathon.CheckConfig(cl.Name, cl.Marathon, path+".marathon", p)
		},
		open: func(s *Service, cl config.Cluster, o target.Options) (target.Target, error) {
			return marathon.Open(cl, o, s.MarathonOptions...)
		},
	},
	config.ClusterDocker: {check: docker.CheckConfig, open: func(s *Service, cl config.Cluster, o target.Options) (target.Target, error) {
		return docker.Open(cl, o, s.DockerOptions...)
	}},
	config.ClusterSwarm: {check: swarm.CheckConfig, open: func(_ *Service, cl config.Cluster, o target.Options) (target.Target, error) { return swarm.Open(cl, o) }},
}

// platformNames lists the platforms for an error message.
func platformNames() string {
	names := slices.Sorted(maps.Keys(platforms))
	return strings.Join(names, ", ")
}

// CheckConfig checks the clusters and the deployer's settings: a
// config.Section, run by `slipway config check` and at the start of a
// process that runs the deployer. Each cluster's platform checks its own
// block.
func (*Service) CheckConfig(c *config.Config, p *config.Problems) {
	if c.Deployer.Concurrency < 0 {
		p.Add("deployer.concurrency", "must be positive")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clusters {
		path := fmt.Sprintf("clusters[%d]", i)
		if !config.ValidName(cl.Name) {
			p.Add(path+".name", "%q must be lowercase letters, digits, '-' or '_'", cl.Name)
		} else if seen[cl.Name] {
			p.Add(path+".name", "%q is defined twice", cl.Name)
		}
		seen[cl.Name] = true
		c.CheckEnvironment(p, path+".environment", cl.Environment)
		if cl.Deploy.Timeout < 0 {
			p.Add(path+".deploy.timeout", "must not be negative")
		}
		pl, ok := platforms[cl.Platform()]
		if !ok {
			p.Add(path+".type", "%q is not a platform this deployer drives (%s)", cl.Type, platformNames())
			continue
		}
		checkBlocks(cl, path, p)
		checkGates(cl, path, p)
		checkVerifiedConfig(c, cl, path, p)
		pl.check(cl, path, p)
	}
	checkCompliance(c, p)
}

// checkBlocks refuses a connection block of another platform than the
// cluster's type: a docker block on a cluster that defaults to marathon
// means the type was forgotten.
func checkBlocks(cl config.Cluster, path string, p *config.Problems) {
	hasMarathon := cl.Marathon.URL != "" || cl.Marathon.CAFile != "" || cl.Marathon.Auth != (config.MarathonAuth{})
	hasDocker := cl.Docker != (config.Docker{})
	switch cl.Platform() {
	case config.ClusterMarathon:
		if hasDocker {
			p.Add(path+".docker", "is for clusters of type docker or swarm; set type: docker (or swarm), or remove the block")
		}
	default:
		if hasMarathon {
			p.Add(path+".marathon", "is for clusters of type marathon; this cluster's type is %s", cl.Platform())
		}
	}
}

// settingsOf is the deployer's settings with the defaults of those unset.
func settingsOf(s config.Deployer) config.Deployer {
	s.SyncInterval = cmp.Or(s.SyncInterval, DefaultSyncInterval)
	s.ReconcileInterval = cmp.Or(s.ReconcileInterval, DefaultReconcileInterval)
	s.PollInterval = cmp.Or(s.PollInterval, DefaultPollInterval)
	s.Concurrency = cmp.Or(s.Concurrency, DefaultDeployConcurrency)
	return s
}

// deployPolicy is a cluster's deploy policy with its defaults applied.
type deployPolicy struct {
	timeout   time.Duration
	rollback  bool // default true
	pinDigest bool // default true
	force     bool
}

func policyOf(d config.DeployPolicy) deployPolicy {
	return deployPolicy{
		timeout:   cmp.Or(d.Timeout, DefaultDeployTimeout),
		rollback:  d.Rollback == nil || *d.Rollback,
		pinDigest: d.PinDigest == nil || *d.PinDigest,
		force:     d.Force,
	}
}
