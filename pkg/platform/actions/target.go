package actions

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
)

var (
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	repoRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
)

// ParseImage reads registry/repository:tag[@digest], the image a promote
// action names. The registry is required (an action never means Docker
// Hub by default), and so is the tag: a rule selects images by tag and
// names the target by it.
func ParseImage(s string) (events.ImageRef, error) {
	bad := func(format string, args ...any) (events.ImageRef, error) {
		return events.ImageRef{}, fmt.Errorf("%w: image %q: %s", ErrInvalid, s, fmt.Sprintf(format, args...))
	}
	var ref events.ImageRef
	rest := strings.TrimSpace(s)
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, ref.Digest = rest[:i], rest[i+1:]
		if !digestRE.MatchString(ref.Digest) {
			return bad("the digest must be sha256:<64 hex digits>")
		}
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 || !(strings.ContainsAny(rest[:slash], ".:") || rest[:slash] == "localhost") {
		return bad("name the registry: registry/repository:tag")
	}
	ref.Registry, rest = strings.ToLower(rest[:slash]), rest[slash+1:]
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest, ref.Tag = rest[:i], rest[i+1:]
	}
	if ref.Tag == "" {
		return bad("name the tag: registry/repository:tag")
	}
	if !tagRE.MatchString(ref.Tag) {
		return bad("%q is not a valid tag", ref.Tag)
	}
	if !repoRE.MatchString(rest) {
		return bad("%q is not a valid repository", rest)
	}
	ref.Repository = rest
	return ref, nil
}

// PromoteTarget checks a promote action against the configuration and
// returns its target: image is registry/repository:tag[@digest] in the
// rule's from environment, found by the registry's host or one of its
// aliases; rule names the promotion, or is empty for the one rule that
// promotes the image from its environment (several are an error that
// lists them). The target's environment is the rule's to.
func PromoteTarget(cfg *config.Config, image, rule string) (events.ActionTarget, error) {
	bad := func(format string, args ...any) (events.ActionTarget, error) {
		return events.ActionTarget{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	ref, err := ParseImage(image)
	if err != nil {
		return events.ActionTarget{}, err
	}
	var envs []string
	for _, e := range cfg.Environments {
		if e.Registry.Names(ref.Registry) {
			envs = append(envs, e.Name)
		}
	}
	if len(envs) == 0 {
		return bad("registry %s is no environment's registry (host or alias)", ref.Registry)
	}
	var names, matching, fromEnv []string
	why := map[string]string{}
	for _, p := range cfg.Promotions {
		names = append(names, p.Name)
		if !slices.Contains(envs, p.From) {
			continue
		}
		fromEnv = append(fromEnv, p.Name)
		if ok, reason := promotionMatches(p, ref); ok {
			matching = append(matching, p.Name)
		} else {
			why[p.Name] = reason
		}
	}
	envList := strings.Join(envs, ", ")
	if rule != "" {
		i := slices.IndexFunc(cfg.Promotions, func(p config.Promotion) bool { return p.Name == rule })
		switch {
		case i < 0:
			return bad("no promotion rule %q (configured: %s)", rule, orNone(names))
		case !slices.Contains(envs, cfg.Promotions[i].From):
			return bad("rule %s promotes from %s, but %s is in %s", rule, cfg.Promotions[i].From, ref.Registry, envList)
		case !slices.Contains(matching, rule):
			return bad("rule %s does not promote %s: %s", rule, ref.Repository+":"+ref.Tag, why[rule])
		}
		return events.ActionTarget{Environment: cfg.Promotions[i].To, Image: ref.String(), Promotion: rule}, nil
	}
	switch len(matching) {
	case 0:
		return bad("no promotion rule promotes %s from %s (rules from there: %s)", ref.Repository+":"+ref.Tag, envList, orNone(fromEnv))
	case 1:
		i := slices.IndexFunc(cfg.Promotions, func(p config.Promotion) bool { return p.Name == matching[0] })
		return events.ActionTarget{Environment: cfg.Promotions[i].To, Image: ref.String(), Promotion: matching[0]}, nil
	}
	return bad("several rules promote %s: %s; choose one with --rule", ref.Repository+":"+ref.Tag, strings.Join(matching, ", "))
}

// promotionMatches is the rule's repository and tag filter, as the
// promoter applies it.
func promotionMatches(p config.Promotion, ref events.ImageRef) (bool, string) {
	images, probs := match.Compile(p.Repositories, p.Tags)
	if len(probs) > 0 {
		return false, "its filters do not compile: " + probs[0].Field + ": " + probs[0].Err.Error()
	}
	return images.Matches(ref.Repository, ref.Tag)
}

// WorkloadTarget checks a rollback or redeploy against the configuration
// and returns its target: the cluster must be configured, and names the
// environment. A Marathon app id is absolute, as Marathon reads one
// without its leading slash.
func WorkloadTarget(cfg *config.Config, cluster, workload string) (events.ActionTarget, error) {
	i := slices.IndexFunc(cfg.Clusters, func(c config.Cluster) bool { return c.Name == cluster })
	if i < 0 {
		var names []string
		for _, c := range cfg.Clusters {
			names = append(names, c.Name)
		}
		return events.ActionTarget{}, fmt.Errorf("%w: no cluster %q (configured: %s)", ErrInvalid, cluster, orNone(names))
	}
	workload = strings.TrimSpace(workload)
	if workload == "" || workload == "/" {
		return events.ActionTarget{}, fmt.Errorf("%w: name the workload", ErrInvalid)
	}
	c := cfg.Clusters[i]
	if c.Platform() == config.ClusterMarathon && !strings.HasPrefix(workload, "/") {
		workload = "/" + workload
	}
	return events.ActionTarget{Environment: c.Environment, Cluster: c.Name, AppID: workload}, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
