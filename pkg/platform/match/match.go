// Package match selects images by repository and tag, the way every part of
// Slipway's configuration that names images does (promotions, ingest routes):
//
//	repositories: ["apps/**"]        # globs over the repository path
//	tags: { semver: ">=1.0.0" }      # or { regex: '.*-integration' }; neither = every tag
//
// # Repositories
//
// Each entry of repositories is a glob over the repository path (without the
// registry host), matched with github.com/bmatcuk/doublestar/v4: `*` matches
// within one path segment, `**` as a whole segment matches any number of
// segments, `?`, `[a-z]` and `{a,b}` work as in a shell. A repository matches
// when it matches any entry; an empty list matches every repository.
//
// # Tags
//
// tags.semver is a github.com/Masterminds/semver/v3 constraint. The tag must be
// a full semantic version MAJOR.MINOR.PATCH[-PRERELEASE], optionally with a
// leading "v"; pre-releases only match a constraint that itself names a
// pre-release (">=0.0.0-0" matches every version). tags.regex is a Go (RE2)
// regular expression matched against the whole tag, as if written ^(?:…)$.
// Setting both is an error; setting neither matches every tag.
package match

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/bmatcuk/doublestar/v4"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Images is a compiled repositories + tags selection. It is immutable and
// safe for concurrent use.
type Images struct {
	// Repositories are the globs as configured; empty matches all.
	Repositories []string

	semver    *semver.Constraints // nil: no semver filter
	semverSrc string
	regex     *regexp.Regexp // nil: no regex filter
	regexSrc  string
}

// Problem is one thing wrong with a selection. Field is relative to it:
// "repositories[1]", "tags", "tags.semver" or "tags.regex".
type Problem struct {
	Field string
	Err   error
}

// Compile checks repositories and tags and compiles them. It returns every
// problem found; the selection is usable only when there are none.
func Compile(repositories []string, tags config.TagFilter) (*Images, []Problem) {
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{Field: field, Err: fmt.Errorf(format, args...)})
	}
	m := &Images{Repositories: append([]string(nil), repositories...)}
	for i, g := range repositories {
		field := fmt.Sprintf("repositories[%d]", i)
		switch {
		case g == "":
			add(field, "is empty")
		case !doublestar.ValidatePattern(g):
			add(field, "%q is not a valid glob", g)
		}
	}

	switch t := tags; {
	case t.Semver != "" && t.Regex != "":
		add("tags", "set semver or regex, not both")
	case t.Semver != "":
		c, err := semver.NewConstraint(t.Semver)
		switch {
		case err == nil:
		case strings.Contains(err.Error(), t.Semver):
			add("tags.semver", "%v", err)
		default:
			add("tags.semver", "%q: %v", t.Semver, err)
		}
		m.semver, m.semverSrc = c, t.Semver
	case t.Regex != "":
		// Compile what the user wrote first: only a valid expression can be
		// wrapped safely ("a)|(b" would compile once wrapped, unanchored).
		if _, err := regexp.Compile(t.Regex); err != nil {
			add("tags.regex", "%v", err)
			break
		}
		re, err := regexp.Compile(`^(?:` + t.Regex + `)$`)
		if err != nil {
			add("tags.regex", "%v", err)
		}
		m.regex, m.regexSrc = re, t.Regex
	}
	return m, probs
}

// HasTagFilter reports whether tags.semver or tags.regex is set.
func (m *Images) HasTagFilter() bool { return m.semver != nil || m.regex != nil }

// Matches reports whether repository:tag (repository without the registry
// host) is selected. When it is not, the reason says why, for logs and
// explanations.
func (m *Images) Matches(repository, tag string) (bool, string) {
	if !m.MatchesRepository(repository) {
		return false, fmt.Sprintf("repository %q matches none of %q", repository, m.Repositories)
	}
	switch {
	case m.semver != nil:
		v, _, ok := ParseVersion(tag)
		if !ok {
			return false, fmt.Sprintf("tag %q is not a semantic version (tags.semver %q)", tag, m.semverSrc)
		}
		if ok, errs := m.semver.Validate(v); !ok {
			reason := fmt.Sprintf("tag %q does not satisfy tags.semver %q", tag, m.semverSrc)
			if len(errs) > 0 {
				reason += ": " + errs[0].Error()
			}
			return false, reason
		}
	case m.regex != nil:
		if !m.regex.MatchString(tag) {
			return false, fmt.Sprintf("tag %q does not match tags.regex %q", tag, m.regexSrc)
		}
	}
	return true, ""
}

// MatchesRepository reports whether repository matches one of the globs (or
// there are none).
func (m *Images) MatchesRepository(repository string) bool {
	if len(m.Repositories) == 0 {
		return true
	}
	for _, g := range m.Repositories {
		if doublestar.MatchUnvalidated(g, repository) {
			return true
		}
	}
	return false
}

// ParseVersion parses a tag as a full semantic version with an optional
// leading "v", returning the version and that prefix.
func ParseVersion(tag string) (*semver.Version, string, bool) {
	s, prefix := tag, ""
	if rest, ok := strings.CutPrefix(tag, "v"); ok {
		s, prefix = rest, "v"
	}
	v, err := semver.StrictNewVersion(s)
	if err != nil {
		return nil, "", false
	}
	return v, prefix, true
}
