package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
	"github.com/slipway-cd/slipway/services/deployer/compliance"
	"github.com/slipway-cd/slipway/services/deployer/policy"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// registryTimeout bounds one registry request of a compliance check: a
// registry that hangs must not hold back the next reconcile pass.
const registryTimeout = 20 * time.Second

var ruleKinds = []string{config.RuleOwnRegistry, config.RulePromoted, config.RulePinnedDigest, config.RuleReferrers, config.RuleMaxAge}

// checkCompliance checks the compliance rules: names unique, environments
// known, a known kind, and the keys the kind needs and no others.
func checkCompliance(c *config.Config, p *config.Problems) {
	seen := map[string]bool{}
	for i, r := range c.Compliance {
		path := fmt.Sprintf("compliance[%d]", i)
		switch {
		case !config.ValidName(r.Name):
			p.Add(path+".name", "%q must be lowercase letters, digits, '-' or '_'", r.Name)
		case seen[r.Name]:
			p.Add(path+".name", "%q is defined twice", r.Name)
		}
		seen[r.Name] = true
		if len(r.Environments) == 0 {
			p.Add(path+".environments", "must name at least one environment")
		}
		for j, e := range r.Environments {
			c.CheckEnvironment(p, fmt.Sprintf("%s.environments[%d]", path, j), e)
		}
		switch r.Rule {
		case config.RuleOwnRegistry, config.RulePromoted, config.RulePinnedDigest:
		case config.RuleReferrers:
			if len(r.ArtifactTypes) == 0 {
				p.Add(path+".artifactTypes", "rule referrers needs the artifact types that must be attached (e.g. %s)", oci.CosignSignatureType)
			}
			for j, t := range r.ArtifactTypes {
				if strings.TrimSpace(t) == "" {
					p.Add(fmt.Sprintf("%s.artifactTypes[%d]", path, j), "must not be empty")
				}
			}
		case config.RuleMaxAge:
			if r.MaxAge <= 0 {
				p.Add(path+".maxAge", "rule maxAge needs a positive duration (e.g. 2160h)")
			}
		case "":
			p.Add(path+".rule", "is required: one of %s", strings.Join(ruleKinds, ", "))
			continue
		default:
			p.Add(path+".rule", "%q is not a rule; use one of %s", r.Rule, strings.Join(ruleKinds, ", "))
			continue
		}
		if r.Rule != config.RuleReferrers && len(r.ArtifactTypes) > 0 {
			p.Add(path+".artifactTypes", "is for rule referrers only; this rule is %s", r.Rule)
		}
		if r.Rule != config.RuleMaxAge && r.MaxAge != 0 {
			p.Add(path+".maxAge", "is for rule maxAge only; this rule is %s", r.Rule)
		}
	}
}

// complianceChecks is what every cluster's compliance check shares: the
// violations bucket, the registries and the record of promotions.
type complianceChecks struct {
	store  *compliance.Store
	access *oci.Access
	cfg    *config.Config
}

// openCompliance opens the violations bucket; nil when no rule is
// configured (nothing to check).
func openCompliance(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (*complianceChecks, error) {
	if len(cfg.Compliance) == 0 {
		return nil, nil
	}
	st, err := compliance.Open(ctx, js, cfg.NATS.Stream.Replicas)
	if err != nil {
		return nil, err
	}
	regs := make([]config.Registry, 0, len(cfg.Environments))
	for _, e := range cfg.Environments {
		regs = append(regs, e.Registry)
	}
	return &complianceChecks{store: st, access: oci.NewAccess(regs), cfg: cfg}, nil
}

// clusterCompliance is the rules of one cluster's environment.
type clusterCompliance struct {
	*complianceChecks
	env   config.Environment
	rules []config.ComplianceRule
	// onlyPromotions says why being in the environment's registry does
	// not count for the promoted rule ("" when it does): the cluster
	// takes only promoted images, or the registry serves another
	// environment too, so any push of theirs is in it.
	onlyPromotions string
}

// forCluster returns the checks of cl; nil when its environment has no
// rules.
func (cc *complianceChecks) forCluster(cl config.Cluster) *clusterCompliance {
	if cc == nil {
		return nil
	}
	env, _ := cc.cfg.Environment(cl.Environment)
	out := &clusterCompliance{complianceChecks: cc, env: env}
	for _, r := range cc.cfg.Compliance {
		for _, e := range r.Environments {
			if e == cl.Environment {
				out.rules = append(out.rules, r)
				break
			}
		}
	}
	if len(out.rules) == 0 {
		return nil
	}
	if cc.cfg.AcceptOf(cl) == config.AcceptPromoted {
		out.onlyPromotions = cl.Name + " takes only promoted images"
	}
	for _, other := range cc.cfg.Environments {
		if other.Name != env.Name && env.Registry.Names(other.Registry.Host) {
			out.onlyPromotions = fmt.Sprintf("%s shares its registry %s with %s, so a push of either is in it", env.Name, env.Registry.Host, other.Name)
			break
		}
	}
	return out
}

// checkCompliance runs one compliance pass over the cluster: called once
// per reconcile pass.
func (c *cluster) checkCompliance(ctx context.Context) {
	if c.compliance == nil {
		return
	}
	if err := c.compliance.pass(ctx, c); err != nil && ctx.Err() == nil {
		c.log.Warn("compliance check failed; the next pass tries again", "error", err)
	}
}

// pass evaluates every rule of the environment on every managed workload
// of the cluster, records each new violation and announces it once
// (compliance.violated), and deletes the record of each violation that is
// fixed. A rule that could not be evaluated (a registry that did not
// answer) keeps its record as it was.
func (cc *clusterCompliance) pass(ctx context.Context, c *cluster) error {
	ws, err := c.target.List(ctx)
	if err != nil {
		return err
	}
	existing, err := cc.store.Cluster(ctx, c.name)
	if err != nil {
		return err
	}
	ev := &evaluation{cc: cc, c: c, answers: map[string]answer{}}
	found := map[string]compliance.Violation{}
	keep := map[string]bool{}
	for _, w := range ws {
		managed, err := c.ownsForCompliance(ctx, w)
		if err != nil {
			return err
		}
		if !managed {
			continue
		}
		for _, r := range cc.rules {
			key := compliance.Key(c.name, w.ID, r.Name)
			if len(w.Rollouts) > 0 {
				keep[key] = true // what it runs is about to change
				continue
			}
			detail, digest, err := ev.check(ctx, r, w)
			switch {
			case err != nil:
				keep[key] = true
				c.log.Warn("compliance rule could not be checked; its last result stands", "rule", r.Name, "app", w.ID, "error", err)
			case detail != "":
				found[key] = compliance.Violation{
					Cluster: c.name, Environment: c.env, AppID: w.ID, Rule: r.Name, Kind: r.Rule,
					Image: w.Image, Digest: digest, Detail: detail, Since: time.Now().UTC(),
				}
			}
		}
	}
	for key, v := range found {
		if err := cc.record(ctx, c, v, existing[key]); err != nil {
			return err
		}
	}
	for key, e := range existing {
		if _, still := found[key]; still || keep[key] {
			continue
		}
		if err := cc.store.Delete(ctx, key, e.Revision); err != nil {
			return err
		}
		c.log.Info("compliance: violation fixed", "rule", e.Rule, "app", e.AppID)
	}
	return nil
}

// ownsForCompliance tells whether the cluster manages w: the index
// manages it, or the inventory records it as managed by this cluster (an
// app changed by hand to another registry's image is still ours; a
// labelled app of another environment on the same platform is not).
func (c *cluster) ownsForCompliance(ctx context.Context, w target.Workload) (bool, error) {
	if _, ok := w.Labels[LabelPolicy]; !ok {
		return false, nil
	}
	if c.index.managed(w) != nil {
		return true, nil
	}
	rec, ok, err := c.store.inv.Get(ctx, c.name, w.ID)
	return ok && rec.Managed, err
}

// record stores a violation found now. A new one is created (create-only:
// of several deployer replicas one wins) and announced; one already
// recorded is announced if the earlier announcement did not go out, and
// otherwise only follows what the workload runs.
func (cc *clusterCompliance) record(ctx context.Context, c *cluster, v compliance.Violation, old compliance.Entry) error {
	if old.Revision == 0 {
		rev, created, err := cc.store.Create(ctx, v)
		if err != nil || !created {
			return err // not created: another replica did; it announces
		}
		v.Occurrence = rev
		return cc.announce(ctx, c, v, rev)
	}
	if old.EventID == "" {
		v.Since, v.Occurrence = old.Since, old.Occurrence
		if v.Occurrence == 0 {
			v.Occurrence = old.Revision // never updated since its creation
		}
		return cc.announce(ctx, c, v, old.Revision)
	}
	if old.Image == v.Image && old.Digest == v.Digest && old.Detail == v.Detail {
		return nil
	}
	v.Since, v.Occurrence, v.EventID = old.Since, old.Occurrence, old.EventID
	if err := cc.store.Update(ctx, v, old.Revision); err != nil && !isConflict(err) {
		return err
	}
	return nil
}

// announce publishes compliance.violated for v and records that it did.
// The event id is the same for every replica announcing this occurrence
// (the stream drops the copies) and new when the violation comes back.
func (cc *clusterCompliance) announce(ctx context.Context, c *cluster, v compliance.Violation, rev uint64) error {
	key := compliance.Key(v.Cluster, v.AppID, v.Rule)
	e, err := events.New(ctx, events.Spec{
		ID:          events.ID("compliance.violated", key, strconv.FormatUint(v.Occurrence, 10)),
		Type:        events.TypeComplianceViolated,
		Source:      "/slipway/deployer/" + c.name,
		Environment: c.env,
		Subject:     c.name + ":" + v.AppID,
		Data: events.ComplianceViolated{
			Cluster: v.Cluster, Environment: v.Environment, AppID: v.AppID, Rule: v.Rule, Kind: v.Kind,
			Image: v.Image, Digest: v.Digest, Detail: v.Detail,
		},
	})
	if err != nil {
		return err
	}
	if _, err := c.pub.Publish(ctx, e); err != nil {
		return err
	}
	c.log.Warn("compliance: a workload breaks a rule", "rule", v.Rule, "kind", v.Kind, "app", v.AppID, "image", v.Image, "detail", v.Detail)
	v.EventID = e.ID()
	if err := cc.store.Update(ctx, v, rev); err != nil && !isConflict(err) {
		return err
	}
	return nil
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// evaluation is one pass's checks of one cluster, with the registries'
// answers cached per reference: many workloads run the same image.
type evaluation struct {
	cc      *clusterCompliance
	c       *cluster
	answers map[string]answer
}

type answer struct {
	val any
	err error
}

// check evaluates rule r on w: the violation's detail ("" when w
// complies) and the digest w runs, when known. An error means the rule
// could not be checked now.
func (ev *evaluation) check(ctx context.Context, r config.ComplianceRule, w target.Workload) (detail, digest string, err error) {
	img, err := policy.ParseImage(w.Image)
	if err != nil {
		return fmt.Sprintf("the image %q cannot be parsed: %v", w.Image, err), "", nil
	}
	envReg := ev.cc.env.Registry
	if r.Rule == config.RuleOwnRegistry {
		if !envReg.Names(img.Registry) {
			return fmt.Sprintf("runs an image of %s, not of %s's registry %s", img.Registry, ev.cc.env.Name, envReg.Host), img.Digest, nil
		}
		return "", img.Digest, nil
	}
	if r.Rule == config.RulePinnedDigest {
		if img.Digest == "" {
			return "the image is referenced by tag only; pin it by digest (@sha256:…)", "", nil
		}
		return "", img.Digest, nil
	}
	digest, err = ev.digest(ctx, w, img)
	if err != nil {
		return "", "", err
	}
	if digest == "" {
		return fmt.Sprintf("the digest it runs is unknown: %s is a tag of %s, a registry Slipway is not configured to reach", w.Image, img.Registry), "", nil
	}
	// In the environment's registry, where promotions put images.
	inEnv := envReg.Host + "/" + img.Repository + "@" + digest
	switch r.Rule {
	case config.RulePromoted:
		ok, err := ev.promoted(ctx, digest)
		if err != nil || ok {
			return "", digest, err
		}
		if why := ev.cc.onlyPromotions; why != "" {
			return fmt.Sprintf("%s was not promoted into %s by Slipway (%s: only a promotion counts)", short(digest), ev.cc.env.Name, why), digest, nil
		}
		there, err := ev.exists(ctx, envReg.Host, inEnv)
		if err != nil || there {
			return "", digest, err
		}
		return fmt.Sprintf("%s was neither promoted into %s by Slipway nor pushed to its registry %s", short(digest), ev.cc.env.Name, envReg.Host), digest, nil
	case config.RuleReferrers:
		there, err := ev.exists(ctx, envReg.Host, inEnv)
		if err != nil {
			return "", digest, err
		}
		if !there {
			return fmt.Sprintf("%s is not in %s's registry %s, where its %s would be looked for", short(digest), ev.cc.env.Name, envReg.Host, strings.Join(r.ArtifactTypes, ", ")), digest, nil
		}
		refs, err := ev.attached(ctx, envReg.Host, inEnv)
		if err != nil {
			return "", digest, err
		}
		if missing := oci.MissingTypes(refs, r.ArtifactTypes); len(missing) > 0 {
			return fmt.Sprintf("%s has no %s attached in %s", short(digest), strings.Join(missing, ", "), envReg.Host), digest, nil
		}
		return "", digest, nil
	case config.RuleMaxAge:
		at, what, err := ev.age(ctx, img, digest, w.ID)
		if err != nil {
			return "", digest, err
		}
		if at.IsZero() {
			return fmt.Sprintf("the age of %s is unknown: %s", short(digest), what), digest, nil
		}
		if age := time.Since(at); age > r.MaxAge {
			return fmt.Sprintf("%s %s (%s ago), older than %s", what, at.UTC().Format(time.RFC3339), age.Round(time.Hour), r.MaxAge), digest, nil
		}
		return "", digest, nil
	}
	return "", digest, fmt.Errorf("unknown rule %q", r.Rule)
}

// hostOf is where Slipway reaches the registry named host: the host of
// the environment whose registry it is; "" for a registry not configured,
// which is never asked.
func (ev *evaluation) hostOf(host string) string {
	for _, e := range ev.cc.cfg.Environments {
		if e.Registry.Names(host) {
			return e.Registry.Host
		}
	}
	return ""
}

// cached returns the answer of key, computing it once per pass.
func (ev *evaluation) cached(key string, f func() (any, error)) (any, error) {
	if a, ok := ev.answers[key]; ok {
		return a.val, a.err
	}
	v, err := f()
	ev.answers[key] = answer{v, err}
	return v, err
}

// puller reads host's registry with its configured credentials.
func (ev *evaluation) puller(ctx context.Context, host string) (*remote.Puller, error) {
	v, err := ev.cached("puller "+host, func() (any, error) {
		return remote.NewPuller(
			remote.WithContext(ctx),
			remote.WithAuthFromKeychain(ev.cc.access.Keychain()),
			remote.WithTransport(ev.cc.access.Transport(host)),
			remote.WithUserAgent("slipway-deployer"),
		)
	})
	if err != nil {
		return nil, err
	}
	return v.(*remote.Puller), nil
}

// digest is the digest w runs: its own, or its tag's in its registry
// (the inventory's resolver, whose answers are shared with it) when
// Slipway reaches that registry; "" for a tag of any other registry. A
// registry that was asked and did not answer is an error: nothing is
// known.
func (ev *evaluation) digest(ctx context.Context, w target.Workload, img policy.Image) (string, error) {
	if img.Digest != "" {
		return img.Digest, nil
	}
	if ev.c.digests == nil || !ev.c.digests.Asks(w.Image) {
		return "", nil
	}
	res := ev.c.digests.Resolve(ctx, w.Image)
	if res.Digest == "" {
		return "", errors.New(res.Reason)
	}
	return res.Digest, nil
}

// exists tells whether the manifest ref (host/repository@digest) is in
// host's registry.
func (ev *evaluation) exists(ctx context.Context, host, ref string) (bool, error) {
	v, err := ev.cached("head "+ref, func() (any, error) {
		d, err := name.NewDigest(ref, ev.cc.access.NameOptions(host)...)
		if err != nil {
			return false, err
		}
		p, err := ev.puller(ctx, host)
		if err != nil {
			return false, err
		}
		ctx, cancel := context.WithTimeout(ctx, registryTimeout)
		defer cancel()
		_, err = p.Head(ctx, d)
		if oci.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, ev.cc.access.Scrub(fmt.Errorf("look up %s: %w", ref, err))
		}
		return true, nil
	})
	return v.(bool), err
}

// attached lists the artifacts attached to ref in host's registry.
func (ev *evaluation) attached(ctx context.Context, host, ref string) ([]oci.Referrer, error) {
	v, err := ev.cached("referrers "+ref, func() (any, error) {
		d, err := name.NewDigest(ref, ev.cc.access.NameOptions(host)...)
		if err != nil {
			return []oci.Referrer(nil), err
		}
		p, err := ev.puller(ctx, host)
		if err != nil {
			return []oci.Referrer(nil), err
		}
		ctx, cancel := context.WithTimeout(ctx, registryTimeout)
		defer cancel()
		refs, err := oci.Attached(ctx, d, p)
		if err != nil {
			return []oci.Referrer(nil), ev.cc.access.Scrub(fmt.Errorf("list what is attached to %s: %w", ref, err))
		}
		return refs, nil
	})
	return v.([]oci.Referrer), err
}

// promoted tells whether Slipway promoted digest into the environment, as
// the promoter's record says.
func (ev *evaluation) promoted(ctx context.Context, digest string) (bool, error) {
	if ev.c.promoted == nil {
		return false, nil
	}
	v, err := ev.cached("promoted "+digest, func() (any, error) {
		_, ok, err := ev.c.promoted.Get(ctx, ev.cc.env.Name, digest)
		return ok, err
	})
	return v.(bool), err
}

// age is when the image running digest came to be: when it was pushed, if
// Slipway knows it (the inventory's record of what it deployed), else the
// creation time its configuration records. what says which.
func (ev *evaluation) age(ctx context.Context, img policy.Image, digest, appID string) (time.Time, string, error) {
	rec, ok, err := ev.c.store.inv.Get(ctx, ev.c.name, appID)
	if err != nil {
		return time.Time{}, "", err
	}
	if ok && rec.Digest == digest && !rec.PushedAt.IsZero() {
		return rec.PushedAt, "pushed", nil
	}
	// A digest is the same image wherever it is: one of a registry
	// Slipway does not reach is read in the environment's.
	host := cmp.Or(ev.hostOf(img.Registry), ev.cc.env.Registry.Host)
	ref := host + "/" + img.Repository + "@" + digest
	v, err := ev.cached("created "+ref, func() (any, error) {
		d, err := name.NewDigest(ref, ev.cc.access.NameOptions(host)...)
		if err != nil {
			return time.Time{}, err
		}
		p, err := ev.puller(ctx, host)
		if err != nil {
			return time.Time{}, err
		}
		ctx, cancel := context.WithTimeout(ctx, registryTimeout)
		defer cancel()
		return created(ctx, p, d)
	})
	switch {
	case oci.IsNotFound(err):
		return time.Time{}, "it is not in " + host, nil
	case err != nil:
		return time.Time{}, "", ev.cc.access.Scrub(fmt.Errorf("read the configuration of %s: %w", ref, err))
	case v.(time.Time).IsZero():
		return time.Time{}, "its configuration records no creation time", nil
	}
	return v.(time.Time), "built", nil
}

// created is the creation time in the configuration of the image d, or of
// the first image of an index (the platforms of one build share it).
func created(ctx context.Context, p *remote.Puller, d name.Digest) (time.Time, error) {
	desc, err := p.Get(ctx, d)
	if err != nil {
		return time.Time{}, err
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return time.Time{}, err
		}
		m, err := idx.IndexManifest()
		if err != nil || len(m.Manifests) == 0 {
			return time.Time{}, err
		}
		if desc, err = p.Get(ctx, d.Context().Digest(m.Manifests[0].Digest.String())); err != nil {
			return time.Time{}, err
		}
	}
	im, err := desc.Image()
	if err != nil {
		return time.Time{}, err
	}
	cf, err := im.ConfigFile()
	if err != nil {
		return time.Time{}, err
	}
	return cf.Created.Time, nil
}

// short is a digest cut for a sentence: its algorithm and 12 hex digits.
func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
