package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
)

// DefaultApprovalTimeout is how long a required approval waits for a decision
// when the promotion sets no approval.timeout.
const DefaultApprovalTimeout = 72 * time.Hour

// Rule is one compiled promotion. It is immutable after [Compile] and safe for
// concurrent use.
type Rule struct {
	Name string
	From string // source environment
	To   string // target environment

	// Repositories are the repository globs as configured; empty matches all.
	Repositories []string
	// CopyReferrers is copyReferrers, true when unset.
	CopyReferrers bool
	// RequireReferrers are the artifact types that must be attached to the
	// source image before it is promoted (require.referrers).
	RequireReferrers []string
	// MinAge is how long after the push the image may be promoted.
	MinAge time.Duration
	// Approval as configured; Timeout is DefaultApprovalTimeout when
	// approval is required and no timeout is set.
	Approval config.Approval

	// images is repositories and tags, matched as everywhere else in the
	// configuration.
	images *match.Images

	targetRepo    *template.Template
	targetRepoSrc string
	targetTag     *template.Template
	targetTagSrc  string
}

// FieldError is a problem with one field of a promotion. Field is relative to
// the promotion ("tags.semver") from [Compile] and absolute
// ("promotions[2].tags.semver") from [CompileAll] and [Validate].
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

type problems []*FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	errs := make([]error, len(p))
	for i, fe := range p {
		errs[i] = fe
	}
	return errors.Join(errs...)
}

// Default templates.
const (
	DefaultTargetRepository = "{{ .Repository }}"
	DefaultTargetTag        = "{{ .Tag }}"
)

var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// Compile checks one promotion and compiles it into a Rule. The error lists
// every problem found, each a [*FieldError] naming the field without the
// promotions[i] prefix, e.g. "tags.semver: improper constraint: …".
func Compile(p config.Promotion) (*Rule, error) {
	r, probs := compile(p)
	if err := probs.err(); err != nil {
		return nil, err
	}
	return r, nil
}

func compile(p config.Promotion) (*Rule, problems) {
	var probs problems
	r := &Rule{
		Name:          p.Name,
		From:          p.From,
		To:            p.To,
		Repositories:  append([]string(nil), p.Repositories...),
		CopyReferrers: p.CopyReferrers == nil || *p.CopyReferrers,
		MinAge:        p.MinAge,
		Approval:      p.Approval,
	}
	r.Approval.Approvers = append([]string(nil), p.Approval.Approvers...)

	if p.Name == "" {
		probs.add("name", "is required")
	}
	if p.From == "" {
		probs.add("from", "is required")
	}
	if p.To == "" {
		probs.add("to", "is required")
	}
	if p.From != "" && p.From == p.To {
		probs.add("to", "must differ from from")
	}

	images, imageProbs := match.Compile(p.Repositories, p.Tags)
	for _, mp := range imageProbs {
		probs = append(probs, &FieldError{Field: mp.Field, Err: mp.Err})
	}
	r.images = images

	r.targetRepoSrc = orDefault(p.TargetRepository, DefaultTargetRepository)
	r.targetRepo = compileTemplate(&probs, "targetRepository", r.targetRepoSrc)
	r.targetTagSrc = orDefault(p.TargetTag, DefaultTargetTag)
	r.targetTag = compileTemplate(&probs, "targetTag", r.targetTagSrc)

	if p.Approval.Timeout < 0 {
		probs.add("approval.timeout", "must not be negative")
	} else if p.Approval.Required && p.Approval.Timeout == 0 {
		r.Approval.Timeout = DefaultApprovalTimeout
	}
	for i, a := range p.Approval.Approvers {
		if a == "" {
			probs.add(fmt.Sprintf("approval.approvers[%d]", i), "is empty")
		}
	}

	if p.Require != nil {
		for i, t := range p.Require.Referrers {
			if !mediaTypeRE.MatchString(t) {
				probs.add(fmt.Sprintf("require.referrers[%d]", i), "%q is not an artifact (media) type like application/spdx+json", t)
			}
		}
		r.RequireReferrers = append([]string(nil), p.Require.Referrers...)
	}

	if p.MinAge < 0 {
		probs.add("minAge", "must not be negative")
	}
	return r, probs
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// CompileAll compiles every promotion. The error lists every problem of every
// promotion, each prefixed with "promotions[i].", and duplicate names.
func CompileAll(ps []config.Promotion) ([]*Rule, error) {
	var all problems
	rules := make([]*Rule, 0, len(ps))
	seen := make(map[string]int, len(ps))
	for i, p := range ps {
		prefix := fmt.Sprintf("promotions[%d].", i)
		r, probs := compile(p)
		for _, fe := range probs {
			all = append(all, &FieldError{Field: prefix + fe.Field, Err: fe.Err})
		}
		if p.Name != "" {
			if j, dup := seen[p.Name]; dup {
				all.add(prefix+"name", "%q is already used by promotions[%d]", p.Name, j)
			} else {
				seen[p.Name] = i
			}
		}
		rules = append(rules, r)
	}
	if err := all.err(); err != nil {
		return nil, err
	}
	return rules, nil
}

// Validate compiles every promotion of cfg, for `slipway config check`.
func Validate(cfg *config.Config) error {
	if cfg == nil {
		return nil
	}
	_, err := CompileAll(cfg.Promotions)
	return err
}

// Matches reports whether the rule applies to an image pushed as
// repository:tag (repository without the registry host). When it does not,
// the reason says why, for logs and `slipway` explanations.
func (r *Rule) Matches(repository, tag string) (bool, string) {
	return r.images.Matches(repository, tag)
}

// Target renders targetRepository and targetTag for repository:tag. It does
// not check Matches. The error names the field and, for an invalid result,
// the template and what it produced.
func (r *Rule) Target(repository, tag string) (targetRepository, targetTag string, err error) {
	data := newTemplateData(repository, tag)
	repo, err := render(r.targetRepo, "targetRepository", r.targetRepoSrc, data)
	if err != nil {
		return "", "", err
	}
	if !validRepository(repo) {
		return "", "", &FieldError{Field: "targetRepository", Err: fmt.Errorf("template %q produced %q, which is not a valid repository (lowercase [a-z0-9] components separated by '.', '_', '__' or '-', joined by '/')", r.targetRepoSrc, repo)}
	}
	t, err := render(r.targetTag, "targetTag", r.targetTagSrc, data)
	if err != nil {
		return "", "", err
	}
	if !tagRE.MatchString(t) {
		return "", "", &FieldError{Field: "targetTag", Err: fmt.Errorf("template %q produced %q, which is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})", r.targetTagSrc, t)}
	}
	return repo, t, nil
}

// String is the rule's name and environments, for logs.
func (r *Rule) String() string { return r.Name + " (" + r.From + " → " + r.To + ")" }

var (
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	repoPartRE  = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	maxRepoName = 255
)

func validRepository(s string) bool {
	if s == "" || len(s) > maxRepoName {
		return false
	}
	for part := range strings.SplitSeq(s, "/") {
		if !repoPartRE.MatchString(part) {
			return false
		}
	}
	return true
}

// parseVersion parses a tag as a full semantic version with an optional
// leading "v", returning the version and that prefix.
func parseVersion(tag string) (*semver.Version, string, bool) {
	return match.ParseVersion(tag)
}
