package config

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// Defaults of the parts every service shares. A service defaults its own
// part where it reads it (see Section).
const (
	DefaultEmbeddedListen = "127.0.0.1:4222"
	DefaultStoreDir       = "./data/nats"

	// MinStreamBytes is the smallest nats.stream.maxBytes and
	// deadLetterMaxBytes.
	MinStreamBytes = 1 << 20

	DefaultApprovalRetention = 30 * 24 * time.Hour
)

func (c *Config) applyDefaults() {
	if c.NATS.Embedded.Listen == "" {
		c.NATS.Embedded.Listen = DefaultEmbeddedListen
	}
	if c.NATS.Embedded.StoreDir == "" {
		c.NATS.Embedded.StoreDir = DefaultStoreDir
	}
	if c.NATS.Stream.Name == "" {
		c.NATS.Stream.Name = bus.DefaultStream
	}
	if c.NATS.Stream.Replicas == 0 {
		c.NATS.Stream.Replicas = 1
	}
	if c.NATS.Stream.MaxAge == 0 {
		c.NATS.Stream.MaxAge = bus.DefaultMaxAge
	}
	if c.NATS.Stream.DuplicateWindow == 0 {
		c.NATS.Stream.DuplicateWindow = bus.DefaultDuplicateWindow
	}
	c.Approvals.Retention = cmp.Or(c.Approvals.Retention, DefaultApprovalRetention)
	if o := c.Console.Auth.OIDC; o != nil && o.GroupsClaim == "" {
		o.GroupsClaim = DefaultGroupsClaim
	}
}

// StreamConfig is the stream part in the shape the bus package takes.
func (c *Config) StreamConfig() bus.StreamConfig {
	s := c.NATS.Stream
	return bus.StreamConfig{Name: s.Name, Replicas: s.Replicas, MaxAge: s.MaxAge, DuplicateWindow: s.DuplicateWindow,
		MaxBytes: int64(s.MaxBytes), DeadLetterMaxBytes: int64(s.DeadLetterMaxBytes)}
}

// Environment returns the environment called name.
func (c *Config) Environment(name string) (Environment, bool) {
	for _, e := range c.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return Environment{}, false
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$`)

// checkCommon checks the parts every service relies on: nats,
// environments, approvers, approvals, log, and who may do what (roles,
// groups, the console's login: checkAccess). Each service checks its own
// part (Section).
func (c *Config) checkCommon(p *Problems) {
	c.validateNATS(p)
	envs := map[string]bool{}
	for i, e := range c.Environments {
		path := fmt.Sprintf("environments[%d]", i)
		switch {
		case !events.ValidToken(e.Name):
			p.Add(path+".name", "%q must be letters, digits, '-' or '_' (it is a NATS subject token)", e.Name)
		case envs[e.Name]:
			p.Add(path+".name", "%q is defined twice", e.Name)
		}
		envs[e.Name] = true
		if e.Registry.Host == "" {
			p.Add(path+".registry.host", "is required")
		} else if !ValidHost(e.Registry.Host) {
			p.Add(path+".registry.host", "%q must be a host[:port], without scheme or path", RedactURL(e.Registry.Host))
		}
		checkBasicUser(p, path+".registry.username", e.Registry.Username)
		CheckAccept(p, path+".accept", e.Accept)
		for j, a := range e.Registry.Aliases {
			if !ValidHost(a) {
				p.Add(fmt.Sprintf("%s.registry.aliases[%d]", path, j), "%q must be a host[:port], without scheme or path", RedactURL(a))
			}
		}
	}
	c.checkSharedRegistries(p)
	approvers := map[string]bool{}
	for i, a := range c.Approvers {
		path := fmt.Sprintf("approvers[%d]", i)
		if a.Name == "" {
			p.Add(path+".name", "is required")
		} else if approvers[a.Name] {
			p.Add(path+".name", "%q is defined twice", a.Name)
		}
		approvers[a.Name] = true
		if a.Token == "" && a.SlackUserID == "" {
			p.Add(path+".token", "is required (or tokenFile; or slackUserId alone for an approver who decides only in Slack)")
		}
	}
	if c.Approvals.Retention < 0 {
		p.Add("approvals.retention", "must not be negative")
	}
	c.checkAccess(p, envs)
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.Add("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		p.Add("log.format", "%q must be text or json", c.Log.Format)
	}
}

// checkSharedRegistries refuses two environments that share a registry
// (one's host is a name of the other's) but reach it differently: Slipway
// keeps one way in per registry host (its credentials and TLS), so one of
// the two would silently be used with the other's.
func (c *Config) checkSharedRegistries(p *Problems) {
	for i, e := range c.Environments {
		for j := 0; j < i; j++ {
			o := c.Environments[j]
			if e.Registry.Host == "" || !o.Registry.Names(e.Registry.Host) {
				continue
			}
			if e.Registry.Username != o.Registry.Username || e.Registry.Password != o.Registry.Password ||
				e.Registry.PasswordFile != o.Registry.PasswordFile || e.Registry.Insecure != o.Registry.Insecure {
				p.Add(fmt.Sprintf("environments[%d].registry", i),
					"shares registry %s with environment %q but with other credentials or insecure setting; Slipway reaches a registry one way: give both the same",
					RedactURL(e.Registry.Host), o.Name)
			}
		}
	}
}

// Approver returns the approver called name.
func (c *Config) Approver(name string) (Approver, bool) {
	for _, a := range c.Approvers {
		if a.Name == name {
			return a, true
		}
	}
	return Approver{}, false
}

func (c *Config) validateNATS(p *Problems) {
	n := c.NATS
	if err := c.StreamConfig().Validate(); err != nil {
		p.Add("nats.stream", "%v", err)
	}
	if !events.ValidToken(n.Stream.Name) {
		p.Add("nats.stream.name", "%q must be letters, digits, '-' or '_'", n.Stream.Name)
	}
	for _, b := range []struct {
		key  string
		size ByteSize
	}{{"maxBytes", n.Stream.MaxBytes}, {"deadLetterMaxBytes", n.Stream.DeadLetterMaxBytes}} {
		// A stream smaller than one message of NATS's default maximum
		// payload could refuse an event.
		if b.size > 0 && b.size < MinStreamBytes {
			p.Add("nats.stream."+b.key, "%s must be at least %s (0 for the default, -1 for no bound)", b.size, ByteSize(MinStreamBytes))
		}
	}
	if n.URL == "" {
		return
	}
	for _, u := range strings.Split(n.URL, ",") {
		checkURL(p, "nats.url", strings.TrimSpace(u), false, RedactURL)
	}
	if CountSet(n.User != "", n.Token != "", n.NKeyFile != "", n.CredentialsFile != "") > 1 {
		p.Add("nats", "set one of user/password, token, nkeyFile, credentialsFile")
	}
	if n.User != "" && n.Password == "" {
		p.Add("nats.password", "is required with user (or passwordFile)")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		p.Add("nats.tls", "certFile and keyFile go together")
	}
}

// CheckAccept checks an accept setting (environments[].accept,
// clusters[].deploy.accept): empty, any or promoted.
func CheckAccept(p *Problems, path, accept string) {
	switch accept {
	case "", AcceptAny, AcceptPromoted:
	default:
		p.Add(path, "%q must be %s or %s", accept, AcceptAny, AcceptPromoted)
	}
}
