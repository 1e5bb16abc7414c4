package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// Defaults that the contract names.
const (
	DefaultEmbeddedListen = "127.0.0.1:4222"
	DefaultStoreDir       = "./data/nats"
	DefaultIngestListen   = ":8080"
	DefaultMaxBodyBytes   = 1 << 20

	DefaultDeployTimeout     = 10 * time.Minute
	DefaultSyncInterval      = 5 * time.Minute
	DefaultReconcileInterval = 5 * time.Minute
	DefaultPollInterval      = 5 * time.Second
	DefaultDeployConcurrency = 16

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
	if c.Ingest.Listen == "" {
		c.Ingest.Listen = DefaultIngestListen
	}
	if c.Ingest.MaxBodyBytes == 0 {
		c.Ingest.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Ingest.TLS != nil {
		c.Ingest.TLS.MinVersion = cmp.Or(c.Ingest.TLS.MinVersion, DefaultTLSMinVersion)
	}
	c.Approvals.Retention = cmp.Or(c.Approvals.Retention, DefaultApprovalRetention)
	d := &c.Deployer
	d.SyncInterval = cmp.Or(d.SyncInterval, DefaultSyncInterval)
	d.ReconcileInterval = cmp.Or(d.ReconcileInterval, DefaultReconcileInterval)
	d.PollInterval = cmp.Or(d.PollInterval, DefaultPollInterval)
	d.Concurrency = cmp.Or(d.Concurrency, DefaultDeployConcurrency)
	yes := true
	for i := range c.Clusters {
		p := &c.Clusters[i].Deploy
		p.Timeout = cmp.Or(p.Timeout, DefaultDeployTimeout)
		if p.Rollback == nil {
			p.Rollback = &yes
		}
		if p.PinDigest == nil {
			p.PinDigest = &yes
		}
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

// Validate checks what every service relies on. Services check their own
// parts further when they start (formats, templates, URLs they dial).
func (c *Config) Validate() error {
	var p problems
	c.validateNATS(&p)

	envs := map[string]bool{}
	for i, e := range c.Environments {
		path := fmt.Sprintf("environments[%d]", i)
		switch {
		case !events.ValidToken(e.Name):
			p.add(path+".name", "%q must be letters, digits, '-' or '_' (it is a NATS subject token)", e.Name)
		case envs[e.Name]:
			p.add(path+".name", "%q is defined twice", e.Name)
		}
		envs[e.Name] = true
		if e.Registry.Host == "" {
			p.add(path+".registry.host", "is required")
		} else if !validHost(e.Registry.Host) {
			p.add(path+".registry.host", "%q must be a host[:port], without scheme or path", RedactURL(e.Registry.Host))
		}
		checkBasicUser(&p, path+".registry.username", e.Registry.Username)
		for j, a := range e.Registry.Aliases {
			if !validHost(a) {
				p.add(fmt.Sprintf("%s.registry.aliases[%d]", path, j), "%q must be a host[:port], without scheme or path", RedactURL(a))
			}
		}
	}
	checkEnv := func(path, name string) {
		if name == "" {
			p.add(path, "is required")
		} else if !envs[name] {
			p.add(path, "unknown environment %q", name)
		}
	}

	if c.Ingest.MaxBodyBytes < 0 {
		p.add("ingest.maxBodyBytes", "must be positive")
	}
	c.validateIngestTLS(&p)
	sources := map[string]bool{}
	for i, s := range c.Ingest.Sources {
		path := fmt.Sprintf("ingest.sources[%d]", i)
		switch {
		case !nameRE.MatchString(s.Name):
			p.add(path+".name", "%q must be lowercase letters, digits, '-' or '_' (it is a URL path segment)", s.Name)
		case sources[s.Name]:
			p.add(path+".name", "%q is defined twice", s.Name)
		}
		sources[s.Name] = true
		if s.Format == "" {
			p.add(path+".format", "is required")
		}
		checkEnv(path+".environment", s.Environment)
		c.validateSourceRegistry(&p, path+".registry", s)
		if s.RepositoryPath && s.Format != "artifactory" {
			p.add(path+".repositoryPath", "applies to the artifactory format only (its payload carries the repository key)")
		}
		validateWebhookAuth(&p, path+".auth", s.Auth)
		if s.RateLimit < 0 || s.Burst < 0 {
			p.add(path+".rateLimit", "must not be negative")
		}
	}

	approvers := map[string]bool{}
	for i, a := range c.Approvers {
		path := fmt.Sprintf("approvers[%d]", i)
		if a.Name == "" {
			p.add(path+".name", "is required")
		} else if approvers[a.Name] {
			p.add(path+".name", "%q is defined twice", a.Name)
		}
		approvers[a.Name] = true
		if a.Token == "" && a.SlackUserID == "" {
			p.add(path+".token", "is required (or tokenFile; or slackUserId alone for an approver who decides only in Slack)")
		}
	}
	promotions := map[string]bool{}
	for i, r := range c.Promotions {
		path := fmt.Sprintf("promotions[%d]", i)
		if r.Name == "" {
			p.add(path+".name", "is required")
		} else if promotions[r.Name] {
			p.add(path+".name", "%q is defined twice", r.Name)
		}
		promotions[r.Name] = true
		checkEnv(path+".from", r.From)
		checkEnv(path+".to", r.To)
		if r.From != "" && r.From == r.To {
			p.add(path+".to", "must differ from from")
		}
		if r.Tags.Semver != "" && r.Tags.Regex != "" {
			p.add(path+".tags", "set semver or regex, not both")
		}
		if r.Tags.Regex != "" {
			if _, err := regexp.Compile(r.Tags.Regex); err != nil {
				p.add(path+".tags.regex", "%v", err)
			}
		}
		for j, a := range r.Approval.Approvers {
			if !approvers[a] {
				p.add(fmt.Sprintf("%s.approval.approvers[%d]", path, j), "unknown approver %q", a)
			}
		}
		if r.MinAge < 0 {
			p.add(path+".minAge", "must not be negative")
		}
	}
	if c.Approvals.Retention < 0 {
		p.add("approvals.retention", "must not be negative")
	}

	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		path := fmt.Sprintf("clusters[%d]", i)
		if !nameRE.MatchString(cl.Name) {
			p.add(path+".name", "%q must be lowercase letters, digits, '-' or '_'", cl.Name)
		} else if clusters[cl.Name] {
			p.add(path+".name", "%q is defined twice", cl.Name)
		}
		clusters[cl.Name] = true
		checkEnv(path+".environment", cl.Environment)
		checkURL(&p, path+".marathon.url", cl.Marathon.URL, true, RedactURL)
		a := cl.Marathon.Auth
		if count(a.None, a.Basic != nil, a.DCOS != nil, a.Token != "") > 1 {
			p.add(path+".marathon.auth", "set one of none, basic, dcos, token")
		}
		if cl.Deploy.Timeout < 0 {
			p.add(path+".deploy.timeout", "must not be negative")
		}
		if a.DCOS != nil {
			// uid may come from the service-account JSON in privateKeyFile;
			// the deployer's check (config check runs it) reads the file.
			if a.DCOS.PrivateKeyFile == "" {
				p.add(path+".marathon.auth.dcos.privateKeyFile", "is required")
			}
		}
		if a.Basic != nil && (a.Basic.Username == "" || a.Basic.Password == "") {
			p.add(path+".marathon.auth.basic", "username and password are required")
		}
		if a.Basic != nil {
			checkBasicUser(&p, path+".marathon.auth.basic.username", a.Basic.Username)
		}
	}

	receivers := map[string]bool{}
	for i, r := range c.Notify.Receivers {
		path := fmt.Sprintf("notify.receivers[%d]", i)
		if r.Name == "" {
			p.add(path+".name", "is required")
		} else if receivers[r.Name] {
			p.add(path+".name", "%q is defined twice", r.Name)
		}
		receivers[r.Name] = true
		if count(r.Slack != nil, r.Webhook != nil, r.MSTeams != nil, r.Email != nil, r.CDEvents != nil) != 1 {
			p.add(path, "set exactly one receiver kind (slack, webhook, msteams, email, cdevents)")
		}
		if r.RateLimit < 0 || r.Burst < 0 {
			p.add(path+".rateLimit", "must not be negative")
		}
		switch {
		case r.Webhook != nil:
			checkURL(&p, path+".webhook.url", r.Webhook.URL, true, RedactURL)
		case r.Slack != nil:
			sl := r.Slack
			switch {
			case sl.WebhookURL != "" && sl.Token != "":
				p.add(path+".slack", "set webhookUrl or token, not both")
			case sl.WebhookURL != "":
				checkURL(&p, path+".slack.webhookUrl", sl.WebhookURL, true, RedactSecretURL)
			case sl.Token != "":
				if sl.Channel == "" {
					p.add(path+".slack.channel", "is required with token")
				}
				if sl.APIURL != "" {
					checkURL(&p, path+".slack.apiUrl", sl.APIURL, true, RedactURL)
				}
			default:
				p.add(path+".slack", "set webhookUrl or token (with channel)")
			}
		case r.MSTeams != nil:
			checkURL(&p, path+".msteams.webhookUrl", r.MSTeams.WebhookURL, true, RedactSecretURL)
		case r.Email != nil:
			em := r.Email
			if _, _, err := net.SplitHostPort(em.SMTP); err != nil {
				p.add(path+".email.smtp", "%q must be host:port", RedactURL(em.SMTP))
			}
			if em.From == "" {
				p.add(path+".email.from", "is required")
			}
			if len(em.To) == 0 {
				p.add(path+".email.to", "is required")
			}
			switch em.TLS {
			case "", "starttls", "tls", "none":
			default:
				p.add(path+".email.tls", "%q must be starttls, tls or none", em.TLS)
			}
		case r.CDEvents != nil:
			checkURL(&p, path+".cdevents.url", r.CDEvents.URL, true, RedactURL)
		}
	}
	for i, r := range c.Notify.Routes {
		for j, name := range r.Receivers {
			if !receivers[name] {
				p.add(fmt.Sprintf("notify.routes[%d].receivers[%d]", i, j), "unknown receiver %q", name)
			}
		}
	}

	if c.Deployer.Concurrency < 0 {
		p.add("deployer.concurrency", "must be positive")
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		p.add("log.format", "%q must be text or json", c.Log.Format)
	}
	return p.err()
}

func (c *Config) validateNATS(p *problems) {
	n := c.NATS
	if err := c.StreamConfig().Validate(); err != nil {
		p.add("nats.stream", "%v", err)
	}
	if !events.ValidToken(n.Stream.Name) {
		p.add("nats.stream.name", "%q must be letters, digits, '-' or '_'", n.Stream.Name)
	}
	for _, b := range []struct {
		key  string
		size ByteSize
	}{{"maxBytes", n.Stream.MaxBytes}, {"deadLetterMaxBytes", n.Stream.DeadLetterMaxBytes}} {
		// A stream smaller than one message of NATS's default maximum
		// payload could refuse an event.
		if b.size > 0 && b.size < MinStreamBytes {
			p.add("nats.stream."+b.key, "%s must be at least %s (0 for the default, -1 for no bound)", b.size, ByteSize(MinStreamBytes))
		}
	}
	if n.URL == "" {
		return
	}
	for _, u := range strings.Split(n.URL, ",") {
		checkURL(p, "nats.url", strings.TrimSpace(u), false, RedactURL)
	}
	if count(n.User != "", n.Token != "", n.NKeyFile != "", n.CredentialsFile != "") > 1 {
		p.add("nats", "set one of user/password, token, nkeyFile, credentialsFile")
	}
	if n.User != "" && n.Password == "" {
		p.add("nats.password", "is required with user (or passwordFile)")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		p.add("nats.tls", "certFile and keyFile go together")
	}
}

func validateWebhookAuth(p *problems, path string, a *Auth) {
	if a == nil {
		p.add(path, "is required; use {none: true} to accept unauthenticated webhooks")
		return
	}
	if count(a.None, a.Header != nil, a.HMAC != nil, a.Basic != nil, a.URLToken != "") != 1 {
		p.add(path, "set exactly one of none, header, hmac, basic, urlToken")
		return
	}
	switch {
	case a.Header != nil:
		if a.Header.Name == "" {
			p.add(path+".header.name", "is required")
		}
		if a.Header.Value == "" {
			p.add(path+".header.value", "is required (or valueFile)")
		}
	case a.HMAC != nil:
		if a.HMAC.Header == "" {
			p.add(path+".hmac.header", "is required")
		}
		if a.HMAC.Secret == "" {
			p.add(path+".hmac.secret", "is required (or secretFile)")
		}
		switch a.HMAC.Algorithm {
		case "", "sha1", "sha256", "sha512":
		default:
			p.add(path+".hmac.algorithm", "%q must be sha1, sha256 or sha512", a.HMAC.Algorithm)
		}
	case a.Basic != nil:
		if a.Basic.Username == "" || a.Basic.Password == "" {
			p.add(path+".basic", "username and password are required")
		}
		checkBasicUser(p, path+".basic.username", a.Basic.Username)
	}
}

// checkURL checks that raw is an absolute URL. A problem shows it as show
// (RedactURL, or RedactSecretURL for a URL that is a secret as a whole):
// URLs carry credentials, and an error ends up on a terminal.
func checkURL(p *problems, path, raw string, httpOnly bool, show func(string) string) {
	if raw == "" {
		p.add(path, "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		p.add(path, "%q is not an absolute URL", show(raw))
		return
	}
	if httpOnly && u.Scheme != "http" && u.Scheme != "https" {
		p.add(path, "%q must be http or https", show(raw))
	}
}

// checkBasicUser refuses a user name that HTTP Basic authentication cannot
// carry: it joins user and password with ":" (RFC 7617), so the receiving
// side would split such a name, and every request would be refused.
func checkBasicUser(p *problems, path, user string) {
	if strings.Contains(user, ":") {
		p.add(path, "must not contain ':' (HTTP Basic authentication separates the user name from the password with it)")
	}
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// validateSourceRegistry checks a source's registry: once the host used when
// a payload had none or to override it, it may now only name the source's
// environment's registry (an event's registry is always the environment's;
// other names of it are aliases).
func (c *Config) validateSourceRegistry(p *problems, path string, s Source) {
	if s.Registry == "" {
		return
	}
	if !validHost(s.Registry) {
		p.add(path, "%q must be a host[:port], without scheme or path", RedactURL(s.Registry))
		return
	}
	for i, e := range c.Environments {
		if e.Name == s.Environment && !e.Registry.Names(s.Registry) {
			p.add(path, "%q is not a name of environment %q's registry %q: declare it in environments[%d].registry.aliases (and drop it here)",
				s.Registry, e.Name, e.Registry.Host, i)
		}
	}
}
