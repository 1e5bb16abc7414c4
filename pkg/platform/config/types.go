// Package config loads and checks Slipway's one configuration file. Every
// service reads its own part of the same file.
package config

import (
	"slices"
	"time"
)

// Config is the whole file.
type Config struct {
	NATS         NATS          `yaml:"nats"`
	Environments []Environment `yaml:"environments"`
	Ingest       Ingest        `yaml:"ingest"`
	Promotions   []Promotion   `yaml:"promotions"`
	Approvers    []Approver    `yaml:"approvers"`
	Approvals    Approvals     `yaml:"approvals"`
	Clusters     []Cluster     `yaml:"clusters"`
	Notify       Notify        `yaml:"notify"`
	Deployer     Deployer      `yaml:"deployer"`
	Ops          Ops           `yaml:"ops"`
	Log          Log           `yaml:"log"`

	// Compliance rules are checked against what runs on every cluster of
	// their environments at each deployer reconcile.
	Compliance []ComplianceRule `yaml:"compliance"`

	// Verification is Slipway's own key, which signs the verification
	// summary a promotion attaches to what it verified, and checks it where
	// a cluster requires one (deploy.requireVerified).
	Verification Verification `yaml:"verification"`

	// Console is the web console's section (services/console).
	Console Console `yaml:"console"`
	// Roles say who may view, approve and operate in which environments:
	// the console's users by their OIDC groups or names, and the API's and
	// Slack's approvers by their groups or names. Without roles the API
	// and Slack allow what they did before (any configured approver of the
	// promotion), and the console refuses to start with OIDC.
	Roles []Role `yaml:"roles"`
}

// Console is the web console: release matrix, approvals, timeline, audit.
type Console struct {
	// Listen is the console's HTTP address (default ":8090").
	Listen string      `yaml:"listen"`
	Auth   ConsoleAuth `yaml:"auth"`
	// Roles may also be written here (console.roles, as in the
	// architecture's sample); they are the same as the top-level roles and
	// are added to them.
	Roles []Role `yaml:"roles"`
	// SessionTTL bounds a login (default 8h).
	SessionTTL time.Duration `yaml:"sessionTTL"`
	// Events is how many recent events the console keeps in memory for the
	// timeline, image pages and audit (default 20000).
	Events int `yaml:"events"`
}

// Configured reports whether the file has a console section at all: `slipway
// run` starts the console only then (or when --only names it).
func (c Console) Configured() bool {
	return c.Listen != "" || c.Auth.OIDC != nil || c.Auth.None || len(c.Roles) > 0 || c.SessionTTL != 0 || c.Events != 0
}

// ConsoleAuth is how the console's users log in: OpenID Connect, or
// nothing at all when none is set explicitly.
type ConsoleAuth struct {
	OIDC *OIDC `yaml:"oidc"`
	// None lets anyone in with every permission: only for the demo or a
	// network where everyone may do everything.
	None bool `yaml:"none"`
}

// OIDC is an OpenID provider the console logs users in with
// (authorization code flow with PKCE).
type OIDC struct {
	Issuer           string `yaml:"issuer"`
	ClientID         string `yaml:"clientId"`
	ClientSecret     string `yaml:"clientSecret"`
	ClientSecretFile string `yaml:"clientSecretFile"`
	// RedirectURL is the console's callback as the browser reaches it,
	// https://console.example/auth/callback; its scheme decides whether
	// the session cookie is Secure.
	RedirectURL string `yaml:"redirectUrl"`
	// GroupsClaim names the ID token claim with the user's groups
	// (default "groups").
	GroupsClaim string `yaml:"groupsClaim"`
	// UserClaim names the claim that identifies the user in roles, events
	// and the audit (default "email", then "preferred_username", then
	// "sub").
	UserClaim string `yaml:"userClaim"`
	// Scopes beyond openid (default profile, email, groups).
	Scopes []string `yaml:"scopes"`
}

// Role grants permissions in environments to an OIDC group or a user (an
// OIDC user by its user claim, or an approver by name).
type Role struct {
	Group        string   `yaml:"group"`
	User         string   `yaml:"user"`
	Environments []string `yaml:"environments"`
	// Can lists view, approve and operate; approve and operate include
	// view.
	Can []string `yaml:"can"`
}

// Ops is the listener for /healthz, /readyz and /metrics of a process whose
// services serve no HTTP of their own (ingest serves them on its listener).
type Ops struct {
	// Listen defaults to ":9464" in such a process; set it to serve them
	// in every process, or "off" for none.
	Listen string `yaml:"listen"`
	// Pprof serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ next to /metrics. Off by default: a profile shows the
	// process's internals and costs CPU while it is taken, so it is for
	// an operator who asked for it, on a listener not open to the world.
	Pprof bool `yaml:"pprof"`
}

// Deployer tunes the deployer service.
type Deployer struct {
	// SyncInterval is how often each cluster's app index is rebuilt from a
	// full listing; Marathon's event stream keeps it fresh in between.
	SyncInterval time.Duration `yaml:"syncInterval"`
	// ReconcileInterval is how often running apps are compared with the
	// inventory to detect changes made by hand (drift).
	ReconcileInterval time.Duration `yaml:"reconcileInterval"`
	// Concurrency is how many apps of one cluster are updated at once.
	Concurrency int `yaml:"concurrency"`
	// PollInterval is how often running deployments are polled when the
	// event stream is down.
	PollInterval time.Duration `yaml:"pollInterval"`
}

// Log sets up structured logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// NATS says where the event stream lives.
type NATS struct {
	// URL of the NATS servers (comma-separated); empty runs an embedded server.
	URL      string   `yaml:"url"`
	Embedded Embedded `yaml:"embedded"`
	Stream   Stream   `yaml:"stream"`

	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"passwordFile"`
	Token        string `yaml:"token"`
	TokenFile    string `yaml:"tokenFile"`
	// NKeyFile is a file holding an NKey user seed.
	NKeyFile string `yaml:"nkeyFile"`
	// CredentialsFile is a .creds file (user JWT and seed).
	CredentialsFile string `yaml:"credentialsFile"`
	TLS             TLS    `yaml:"tls"`
}

// Embedded configures the in-process NATS server used when nats.url is empty.
type Embedded struct {
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"storeDir"`
}

// Stream shapes the SLIPWAY stream.
type Stream struct {
	Name            string        `yaml:"name"`
	Replicas        int           `yaml:"replicas"`
	MaxAge          time.Duration `yaml:"maxAge"`
	DuplicateWindow time.Duration `yaml:"duplicateWindow"`
	// MaxBytes bounds the event stream and DeadLetterMaxBytes the
	// dead-letter stream: 0 for the default (1GiB and 256MiB, or less
	// where the server has less storage), -1 for no bound but the
	// server's. A full stream drops its oldest events; a webhook is never
	// refused for space.
	MaxBytes           ByteSize `yaml:"maxBytes"`
	DeadLetterMaxBytes ByteSize `yaml:"deadLetterMaxBytes"`
}

// TLS for a client connection.
type TLS struct {
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"serverName"`
}

// Environment is one stage (dev, tst, prd) with its registry.
type Environment struct {
	Name     string   `yaml:"name"`
	Registry Registry `yaml:"registry"`
	// Accept is which images the environment's clusters deploy: any
	// (default) or promoted, only images a Slipway promotion brought into
	// the environment. A cluster's deploy.accept overrides it.
	Accept string `yaml:"accept"`
}

// What an environment or cluster accepts (environments[].accept,
// clusters[].deploy.accept).
const (
	AcceptAny      = "any"
	AcceptPromoted = "promoted"
)

// AcceptOf is what the cluster deploys: its deploy.accept, else its
// environment's accept, else any.
func (c *Config) AcceptOf(cl Cluster) string {
	if cl.Deploy.Accept != "" {
		return cl.Deploy.Accept
	}
	if e, ok := c.Environment(cl.Environment); ok && e.Accept != "" {
		return e.Accept
	}
	return AcceptAny
}

// Registry is an OCI registry and the credentials Slipway uses with it.
type Registry struct {
	// Host is where Slipway reaches the registry: the only host it ever
	// pulls from, copies to or deploys from for the environment.
	Host string `yaml:"host"`
	// Aliases are other names the same registry is reached by (a public
	// name beside an internal address, a Compose service name beside
	// localhost). A webhook payload may name the registry by its host or
	// one of these; any other host is a foreign registry and refused.
	Aliases      []string `yaml:"aliases"`
	Insecure     bool     `yaml:"insecure"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"passwordFile"`
}

// Ingest is the HTTP entry point.
type Ingest struct {
	Listen       string   `yaml:"listen"`
	MaxBodyBytes int64    `yaml:"maxBodyBytes"`
	Sources      []Source `yaml:"sources"`
	// ResolveTimeout bounds the HEAD that fills a missing digest.
	ResolveTimeout time.Duration `yaml:"resolveTimeout"`
	// TLS, when set, serves the listener over HTTPS.
	TLS *IngestTLS `yaml:"tls"`
}

// IngestTLS is the server side of ingest's HTTPS listener.
type IngestTLS struct {
	// CertFile and KeyFile are PEM files; the certificate is read again
	// when a file changes, so a rotated certificate needs no restart.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ClientCAFile, when set, requires every client to present a
	// certificate signed by one of its CAs (mutual TLS).
	ClientCAFile string `yaml:"clientCAFile"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"minVersion"`
}

// Source is one webhook endpoint, POST /webhooks/{name}.
type Source struct {
	Name        string `yaml:"name"`
	Format      string `yaml:"format"`
	Environment string `yaml:"environment"`
	// Routes, instead of Environment, send each push to the environment of
	// the first route that matches its repository and tag: one registry
	// for several stages. A push no route matches is ignored (and counted).
	Routes []SourceRoute `yaml:"routes"`
	// Registry is the host to use when the payload has none, or to override it.
	Registry string `yaml:"registry"`
	// RepositoryPath: the registry serves images as
	// <host>/<repository key>/<image> (Artifactory's "repository path"
	// Docker access method), so the payload's repository key is the first
	// segment of the repository. Artifactory only.
	RepositoryPath bool  `yaml:"repositoryPath"`
	Auth           *Auth `yaml:"auth"`
	// RateLimit is the most deliveries per second this source accepts
	// (0: no limit); beyond it ingest answers 429 with Retry-After, which
	// registries retry. Burst is how many may come at once (default: the
	// rate, at least 1).
	RateLimit float64 `yaml:"rateLimit"`
	Burst     int     `yaml:"burst"`
}

// SourceRoute sends a source's pushes of matching images to an environment.
type SourceRoute struct {
	// Repositories are globs over the repository path; at least one.
	Repositories []string `yaml:"repositories"`
	// Tags, when set, selects tags by semver or regex; a push by digest
	// only matches a route without tags.
	Tags        TagFilter `yaml:"tags"`
	Environment string    `yaml:"environment"`
}

// Auth is how a source proves it is the registry. Exactly one is set.
type Auth struct {
	None         bool        `yaml:"none"`
	Header       *HeaderAuth `yaml:"header"`
	HMAC         *HMACAuth   `yaml:"hmac"`
	Basic        *BasicAuth  `yaml:"basic"`
	URLToken     string      `yaml:"urlToken"`
	URLTokenFile string      `yaml:"urlTokenFile"`
}

// HeaderAuth expects a header with a fixed value.
type HeaderAuth struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFile string `yaml:"valueFile"`
}

// HMACAuth expects a header with an HMAC of the raw body.
type HMACAuth struct {
	Header string `yaml:"header"`
	// Algorithm is sha1, sha256 (default) or sha512.
	Algorithm  string `yaml:"algorithm"`
	Prefix     string `yaml:"prefix"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secretFile"`
}

// BasicAuth expects HTTP Basic credentials.
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"passwordFile"`
}

// Promotion is a rule that copies images from one environment to the next.
type Promotion struct {
	Name             string        `yaml:"name"`
	From             string        `yaml:"from"`
	To               string        `yaml:"to"`
	Repositories     []string      `yaml:"repositories"`
	Tags             TagFilter     `yaml:"tags"`
	TargetRepository string        `yaml:"targetRepository"`
	TargetTag        string        `yaml:"targetTag"`
	Approval         Approval      `yaml:"approval"`
	CopyReferrers    *bool         `yaml:"copyReferrers"`
	Require          *Requirements `yaml:"require"`
	// Verify lists the verification policies an image must pass, all of
	// them, before it is copied: signatures (cosign, Notation) and
	// provenance (SLSA).
	Verify []VerifyPolicy `yaml:"verify"`
	MinAge time.Duration  `yaml:"minAge"`
}

// TagFilter selects tags by semver constraint or regular expression.
type TagFilter struct {
	Semver string `yaml:"semver"`
	Regex  string `yaml:"regex"`
}

// Approval gates a promotion on a release manager's decision.
type Approval struct {
	Required  bool     `yaml:"required"`
	Approvers []string `yaml:"approvers"`
	// Groups are OIDC groups (or approvers' groups) whose members may
	// decide, beside the named approvers.
	Groups  []string      `yaml:"groups"`
	Timeout time.Duration `yaml:"timeout"`
}

// Requirements a source image must meet before it is promoted.
type Requirements struct {
	// Referrers lists artifact types that must be attached (signatures, SBOMs).
	Referrers []string `yaml:"referrers"`
}

// Approver is a person who may decide approvals.
type Approver struct {
	Name        string `yaml:"name"`
	Token       string `yaml:"token"`
	TokenFile   string `yaml:"tokenFile"`
	SlackUserID string `yaml:"slackUserId"`
	// Groups put the approver in roles and in promotion rules' approval
	// groups, as an OIDC user's groups do.
	Groups []string `yaml:"groups"`
}

// Approvals bounds the approvals bucket (slipway-approvals).
type Approvals struct {
	// Retention is how long a decided or expired approval stays after its
	// decision or expiry; a pending one stays until it expires.
	Retention time.Duration `yaml:"retention"`
}

// Cluster is one deploy target of one environment: a Marathon (DC/OS)
// cluster, a Docker Engine endpoint (a standalone host or a vSphere
// Integrated Containers Virtual Container Host) or a Docker Swarm.
type Cluster struct {
	Name        string `yaml:"name"`
	Environment string `yaml:"environment"`
	// Type is the platform: marathon (the default, so files written before
	// there were others keep working), docker or swarm.
	Type     string       `yaml:"type"`
	Marathon Marathon     `yaml:"marathon"`
	Docker   Docker       `yaml:"docker"`
	Deploy   DeployPolicy `yaml:"deploy"`
}

// ComplianceRule is one rule every managed workload of its environments
// must keep; a workload that breaks it is a violation, announced once.
type ComplianceRule struct {
	Name         string   `yaml:"name"`
	Environments []string `yaml:"environments"`
	// Rule is the kind: ownRegistry, promoted, pinnedDigest, referrers or
	// maxAge (the Rule* constants).
	Rule string `yaml:"rule"`
	// ArtifactTypes must each be attached to the image (rule referrers).
	ArtifactTypes []string `yaml:"artifactTypes"`
	// MaxAge is the oldest an image may be (rule maxAge).
	MaxAge time.Duration `yaml:"maxAge"`
}

// Compliance rule kinds.
const (
	RuleOwnRegistry  = "ownRegistry"
	RulePromoted     = "promoted"
	RulePinnedDigest = "pinnedDigest"
	RuleReferrers    = "referrers"
	RuleMaxAge       = "maxAge"
)

// Cluster types.
const (
	ClusterMarathon = "marathon"
	ClusterDocker   = "docker"
	ClusterSwarm    = "swarm"
)

// Platform is the cluster's type with its default.
func (c Cluster) Platform() string {
	if c.Type == "" {
		return ClusterMarathon
	}
	return c.Type
}

// Docker is how to reach a Docker Engine API endpoint (clusters of type
// docker and swarm).
type Docker struct {
	// Host is unix:///path/to/docker.sock or tcp://host:port.
	Host string `yaml:"host"`
	// TLS is the client certificate and the CA of a tcp:// endpoint.
	TLS DockerTLS `yaml:"tls"`
	// APIVersion pins the API version ("1.25" for a VIC Virtual Container
	// Host); empty negotiates the highest both sides speak.
	APIVersion string `yaml:"apiVersion"`
	// Grace is how long a recreated container without a HEALTHCHECK must
	// run without restarting to count as healthy (type docker; default 10s).
	Grace time.Duration `yaml:"grace"`
}

// DockerTLS is mutual TLS to a Docker endpoint.
type DockerTLS struct {
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// InsecureSkipVerify is not offered: the daemon's socket is root on
	// its host, so its certificate is always checked.
}

// Marathon is how to reach a cluster's Marathon.
type Marathon struct {
	URL    string       `yaml:"url"`
	Auth   MarathonAuth `yaml:"auth"`
	CAFile string       `yaml:"caFile"`
}

// MarathonAuth is one of none, basic, dcos (service account) or a static token.
type MarathonAuth struct {
	None      bool       `yaml:"none"`
	Basic     *BasicAuth `yaml:"basic"`
	DCOS      *DCOSAuth  `yaml:"dcos"`
	Token     string     `yaml:"token"`
	TokenFile string     `yaml:"tokenFile"`
}

// DCOSAuth is a DC/OS service account.
type DCOSAuth struct {
	UID            string `yaml:"uid"`
	PrivateKeyFile string `yaml:"privateKeyFile"`
	LoginEndpoint  string `yaml:"loginEndpoint"`
}

// DeployPolicy is how the deployer rolls out on a cluster.
type DeployPolicy struct {
	Timeout   time.Duration `yaml:"timeout"`
	Rollback  *bool         `yaml:"rollback"`
	PinDigest *bool         `yaml:"pinDigest"`
	Force     bool          `yaml:"force"`
	// Accept overrides the environment's accept for this cluster: any or
	// promoted.
	Accept string `yaml:"accept"`
	// Only, when set, is every image the cluster may deploy; anything else
	// is never deployed there, whatever the workloads' labels say.
	Only *ImageSelector `yaml:"only"`
	// RequireVerified deploys only images that carry a verification summary
	// (SLSA VSA) signed with Slipway's key (verification.summary): what a
	// promotion that verified the image attached to it.
	RequireVerified bool `yaml:"requireVerified"`
}

// ImageSelector selects images by repository globs and a tag filter.
type ImageSelector struct {
	Repositories []string  `yaml:"repositories"`
	Tags         TagFilter `yaml:"tags"`
}

// Notify routes events to receivers.
type Notify struct {
	Receivers []Receiver `yaml:"receivers"`
	Routes    []Route    `yaml:"routes"`
}

// Receiver is one notification target. Exactly one kind is set.
type Receiver struct {
	Name     string            `yaml:"name"`
	Slack    *SlackReceiver    `yaml:"slack"`
	Webhook  *WebhookReceiver  `yaml:"webhook"`
	MSTeams  *MSTeamsReceiver  `yaml:"msteams"`
	Email    *EmailReceiver    `yaml:"email"`
	CDEvents *CDEventsReceiver `yaml:"cdevents"`
	// Templates override the default message texts.
	Templates *Templates `yaml:"templates"`
	// RateLimit is the most messages per second sent to this receiver
	// (default 1 for Slack, 5 for the others); Burst the most at once.
	RateLimit float64 `yaml:"rateLimit"`
	Burst     int     `yaml:"burst"`
}

// Templates are Go templates over the event (see docs/notifications.md).
type Templates struct {
	Title string `yaml:"title"`
	Text  string `yaml:"text"`
	HTML  string `yaml:"html"`
}

// SlackReceiver posts to Slack by incoming webhook or bot token.
type SlackReceiver struct {
	WebhookURL     string `yaml:"webhookUrl"`
	WebhookURLFile string `yaml:"webhookUrlFile"`
	Token          string `yaml:"token"`
	TokenFile      string `yaml:"tokenFile"`
	Channel        string `yaml:"channel"`
	// APIURL is Slack's Web API (default https://slack.com/api).
	APIURL string `yaml:"apiUrl"`
	// SigningSecret verifies Slack's requests to POST /slack/interactions
	// (the Approve / Reject buttons).
	SigningSecret     string `yaml:"signingSecret"`
	SigningSecretFile string `yaml:"signingSecretFile"`
}

// WebhookReceiver posts signed CloudEvents.
type WebhookReceiver struct {
	URL        string `yaml:"url"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secretFile"`
}

// MSTeamsReceiver posts Adaptive Cards to a Teams Workflows webhook.
type MSTeamsReceiver struct {
	WebhookURL     string `yaml:"webhookUrl"`
	WebhookURLFile string `yaml:"webhookUrlFile"`
}

// EmailReceiver sends mail through an SMTP relay.
type EmailReceiver struct {
	// SMTP is host:port of the relay.
	SMTP         string   `yaml:"smtp"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"passwordFile"`
	From         string   `yaml:"from"`
	To           []string `yaml:"to"`
	// TLS is starttls (default), tls (implicit, port 465) or none.
	TLS    string `yaml:"tls"`
	CAFile string `yaml:"caFile"`
}

// CDEventsReceiver posts CDEvents (as CloudEvents over HTTP).
type CDEventsReceiver struct {
	URL string `yaml:"url"`
}

// Route sends matching events to receivers.
type Route struct {
	Match     Match    `yaml:"match"`
	Receivers []string `yaml:"receivers"`
	Continue  bool     `yaml:"continue"`
}

// Match selects events.
type Match struct {
	Types        []string `yaml:"types"`
	Environments []string `yaml:"environments"`
	Repositories []string `yaml:"repositories"`
	Clusters     []string `yaml:"clusters"`
	// Superseded, when set, matches on whether the event is a deployment
	// that a newer image overtook (deployment.failed with superseded):
	// false keeps those out of a route for failures, true selects only
	// them.
	Superseded *bool `yaml:"superseded"`
}

// Matches reports whether the role is for the user name or one of groups.
func (r Role) Matches(name string, groups []string) bool {
	if r.User != "" {
		return r.User == name
	}
	return r.Group != "" && slices.Contains(groups, r.Group)
}

// VerifyPolicy is one check of a promotion rule's verify list; exactly one
// of Cosign, Notation and Provenance is set.
type VerifyPolicy struct {
	// Name names the policy in events and errors (default: its kind and
	// position, "cosign#1").
	Name       string            `yaml:"name"`
	Cosign     *CosignPolicy     `yaml:"cosign"`
	Notation   *NotationPolicy   `yaml:"notation"`
	Provenance *ProvenancePolicy `yaml:"provenance"`
}

// CosignPolicy accepts an image signed with cosign (the tag scheme
// sha256-<hex>.sig, or a Sigstore bundle attached as an OCI 1.1 referrer)
// by a public key, or keyless by an identity certified by a trusted root.
// Exactly one of Key, KeyFile and Keyless is set.
type CosignPolicy struct {
	// Key is a PEM public key written inline; KeyFile a file holding one.
	Key     string   `yaml:"key"`
	KeyFile string   `yaml:"keyFile"`
	Keyless *Keyless `yaml:"keyless"`
}

// Keyless accepts a signature whose short-lived certificate (Fulcio) names
// an identity, checked against a trusted root.
type Keyless struct {
	// TrustedRoot is a Sigstore trusted-root JSON file: the certificate
	// authorities, transparency logs and timestamp authorities trusted.
	TrustedRoot string `yaml:"trustedRoot"`
	// Issuer is the OIDC issuer the certificate must name
	// (https://token.actions.githubusercontent.com).
	Issuer string `yaml:"issuer"`
	// Subject or SubjectRegex: the identity (an e-mail, a workflow URI).
	Subject      string `yaml:"subject"`
	SubjectRegex string `yaml:"subjectRegex"`
}

// NotationPolicy accepts an image signed with Notation (Notary Project),
// verified with a trust store and a trust policy as the notation CLI does.
type NotationPolicy struct {
	// TrustStore is a directory laid out as notation's:
	// x509/{ca,signingAuthority,tsa}/<name>/*.pem.
	TrustStore string `yaml:"trustStore"`
	// TrustPolicy is a notation trustpolicy.json (OCI trust policy).
	TrustPolicy string `yaml:"trustPolicy"`
}

// ProvenancePolicy accepts an image with a SLSA v1 provenance attestation
// (in-toto, attached with cosign attest or as a Sigstore bundle), signed as
// a CosignPolicy says, whose builder, source and build type are allowed.
type ProvenancePolicy struct {
	CosignPolicy `yaml:",inline"`
	// BuilderIDs are the builder ids allowed (runDetails.builder.id).
	BuilderIDs []string `yaml:"builderIds"`
	// SourceRepository is the repository the build must come from (a URI
	// such as git+https://github.com/org/repo, matched without the git+
	// prefix and a trailing .git); SourceRef, when set, the ref
	// (refs/heads/main).
	SourceRepository string `yaml:"sourceRepository"`
	SourceRef        string `yaml:"sourceRef"`
	// BuildType, when set, is the buildDefinition.buildType required.
	BuildType string `yaml:"buildType"`
}

// Verification is Slipway's own signing key for verification summaries.
type Verification struct {
	Summary SummaryKey `yaml:"summary"`
}

// SummaryKey signs (promoter) and checks (deployer) the verification
// summaries (SLSA verification summary attestations).
type SummaryKey struct {
	// KeyFile is the private key (PEM: ECDSA P-256 or Ed25519) the
	// promoter signs with; PublicKeyFile its public key, enough for a
	// deployer (derived from KeyFile when only that is given).
	KeyFile       string `yaml:"keyFile"`
	PublicKeyFile string `yaml:"publicKeyFile"`
	// VerifierID is the summary's verifier.id (default
	// https://slipway.dev/promoter).
	VerifierID string `yaml:"verifierId"`
}
