package policy

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Policy is an app's slipway.policy label, parsed.
type Policy interface {
	// String is the label value (trimmed).
	String() string
	// Accept decides whether an app now running current should move to
	// candidate. The caller has already matched them by RepoKey.
	Accept(current, candidate Image) Decision
}

// Decision is the outcome of Policy.Accept. Reason says why not (or why), in
// words fit for logs and events.
type Decision struct {
	OK     bool
	Reason string
}

func accept(format string, a ...any) Decision {
	return Decision{OK: true, Reason: fmt.Sprintf(format, a...)}
}

func reject(format string, a ...any) Decision {
	return Decision{OK: false, Reason: fmt.Sprintf(format, a...)}
}

const (
	globPrefix   = "glob:"
	regexpPrefix = "regexp:"
)

// Parse parses a slipway.policy label value.
func Parse(label string) (Policy, error) {
	v := strings.TrimSpace(label)
	switch {
	case v == "":
		return nil, fmt.Errorf("slipway.policy %q: empty; want all, major, minor, patch, force, digest, glob:<pattern> or regexp:<re>", label)
	case strings.HasPrefix(v, globPrefix):
		return parseGlob(v)
	case strings.HasPrefix(v, regexpPrefix):
		return parseRegexp(v)
	}
	switch v {
	case "all", "major", "minor", "patch":
		return semverPolicy{kind: v}, nil
	case "force":
		return forcePolicy{}, nil
	case "digest":
		return digestPolicy{}, nil
	}
	return nil, fmt.Errorf("slipway.policy %q: unknown policy%s; want all, major, minor, patch, force, digest, glob:<pattern> or regexp:<re>", v, hint(v))
}

// hint names the value the user most likely meant, for mistakes seen with
// other tools' labels (Flux and Argo CD say "regex", Keel users try "never").
func hint(v string) string {
	lower := strings.ToLower(v)
	switch lower {
	case "all", "major", "minor", "patch", "force", "digest":
		return fmt.Sprintf(" (keywords are lowercase: did you mean %q?)", lower)
	case "none", "never", "off", "false":
		return " (to leave an app alone, remove the label)"
	case "semver":
		return " (did you mean all, major, minor or patch?)"
	}
	for _, p := range []string{globPrefix, regexpPrefix} {
		if rest, ok := cutPrefixFold(v, p); ok {
			return fmt.Sprintf(" (prefixes are lowercase: did you mean %q?)", p+rest)
		}
	}
	if rest, ok := cutPrefixFold(v, "regex:"); ok {
		return fmt.Sprintf(" (did you mean %q?)", regexpPrefix+rest)
	}
	return ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// checkPattern refuses patterns no tag can match for reasons that are
// invisible in a label, so that a typo fails at parse time instead of
// silently never deploying.
func checkPattern(label, p string) error {
	if p == "" {
		return fmt.Errorf("slipway.policy %q: empty pattern", label)
	}
	if strings.TrimSpace(p) != p {
		return fmt.Errorf("slipway.policy %q: pattern has leading or trailing whitespace, which no tag can contain", label)
	}
	return nil
}

// precheck applies the rules every policy shares (see the package doc). When
// it returns ok, the candidate is known to differ from current in tag, or in
// a known digest under the same tag.
func precheck(current, candidate Image) (Decision, bool) {
	switch {
	case current.RepoKey() != candidate.RepoKey():
		return reject("candidate %s is not the repository the app runs (%s)", candidate.RepoKey(), current.RepoKey()), false
	case candidate.Tag == "":
		return reject("candidate %s has no tag: a manifest pushed by digest alone never triggers a deploy", candidate), false
	case candidate.Tag == current.Tag && candidate.Digest == current.Digest:
		return reject("candidate %s is what the app already runs", candidate), false
	case candidate.Tag == current.Tag && candidate.Digest == "":
		return reject("candidate has the running tag %q and no digest: nothing shows it differs from %s", candidate.Tag, shortDigest(current.Digest)), false
	}
	return Decision{}, true
}

// describeChange says what moves, for the Reason of an accepted candidate.
func describeChange(current, candidate Image) string {
	if candidate.Tag == current.Tag {
		return fmt.Sprintf("tag %q moved from %s to %s", candidate.Tag, shortDigest(current.Digest), shortDigest(candidate.Digest))
	}
	return fmt.Sprintf("tag %s → %q", quoteTag(current.Tag), candidate.Tag)
}

func quoteTag(t string) string {
	if t == "" {
		return "(none, pinned by digest)"
	}
	return fmt.Sprintf("%q", t)
}

// shortDigest keeps Reasons readable; 12 hex digits identify an image in
// practice, as in docker's own output.
func shortDigest(d string) string {
	if d == "" {
		return "unknown digest"
	}
	alg, hex, _ := strings.Cut(d, ":")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return alg + ":" + hex
}

type semverPolicy struct{ kind string }

func (p semverPolicy) String() string { return p.kind }

func (p semverPolicy) Accept(current, candidate Image) Decision {
	if d, ok := precheck(current, candidate); !ok {
		return d
	}
	if candidate.Tag == current.Tag {
		return reject("policy %s: tag %q is already running; a new digest for the same tag is not a new version (policy digest or force follows those)", p.kind, candidate.Tag)
	}
	cur, err := parseVersion(current.Tag)
	if err != nil {
		return reject("policy %s: running tag %s is not a semantic version (%v)", p.kind, quoteTag(current.Tag), err)
	}
	cand, err := parseVersion(candidate.Tag)
	if err != nil {
		return reject("policy %s: candidate tag %q is not a semantic version (%v)", p.kind, candidate.Tag, err)
	}
	switch c := cand.Compare(cur); {
	case c == 0:
		return reject("policy %s: %q is the same version as running %q", p.kind, candidate.Tag, current.Tag)
	case c < 0:
		return reject("policy %s: %q is lower than running %q", p.kind, candidate.Tag, current.Tag)
	}
	if p.kind != "all" && cand.Prerelease() != "" && cur.Prerelease() == "" {
		return reject("policy %s: %q is a pre-release and running %q is not (policy all follows pre-releases from releases)", p.kind, candidate.Tag, current.Tag)
	}
	switch {
	case p.kind == "minor" && cand.Major() != cur.Major():
		return reject("policy minor: %q changes the major version of running %q", candidate.Tag, current.Tag)
	case p.kind == "patch" && (cand.Major() != cur.Major() || cand.Minor() != cur.Minor()):
		return reject("policy patch: %q changes the major or minor version of running %q", candidate.Tag, current.Tag)
	}
	return accept("policy %s: %q is higher than running %q", p.kind, candidate.Tag, current.Tag)
}

// parseVersion reads a tag as a version the way Keel does (Masterminds'
// NewVersion: v prefix, 1.2 as 1.2.0), but insists on MAJOR.MINOR so that
// build numbers and dates are not taken for major versions.
func parseVersion(tag string) (*semver.Version, error) {
	if tag == "" {
		return nil, fmt.Errorf("no tag")
	}
	core, _, _ := strings.Cut(strings.TrimPrefix(tag, "v"), "-")
	if !strings.Contains(core, ".") {
		return nil, fmt.Errorf("want MAJOR.MINOR[.PATCH][-PRERELEASE], optionally with a leading v")
	}
	v, err := semver.NewVersion(tag)
	if err != nil {
		return nil, err
	}
	return v, nil
}

type forcePolicy struct{}

func (forcePolicy) String() string { return "force" }

func (forcePolicy) Accept(current, candidate Image) Decision {
	if d, ok := precheck(current, candidate); !ok {
		return d
	}
	return accept("policy force: %s", describeChange(current, candidate))
}

type digestPolicy struct{}

func (digestPolicy) String() string { return "digest" }

func (digestPolicy) Accept(current, candidate Image) Decision {
	if d, ok := precheck(current, candidate); !ok {
		return d
	}
	if candidate.Tag != current.Tag {
		return reject("policy digest: candidate tag %q is not the running tag %s (policy digest only follows new digests of the same tag)", candidate.Tag, quoteTag(current.Tag))
	}
	return accept("policy digest: %s", describeChange(current, candidate))
}

type globPolicy struct{ label, pattern string }

func parseGlob(label string) (Policy, error) {
	p := strings.TrimPrefix(label, globPrefix)
	if err := checkPattern(label, p); err != nil {
		return nil, err
	}
	// path.Match reports a malformed pattern whatever the name, so an empty
	// name is enough to validate it.
	if _, err := path.Match(p, ""); err != nil {
		return nil, fmt.Errorf("slipway.policy %q: invalid glob %q: %w", label, p, err)
	}
	return globPolicy{label: label, pattern: p}, nil
}

func (p globPolicy) String() string { return p.label }

func (p globPolicy) Accept(current, candidate Image) Decision {
	if d, ok := precheck(current, candidate); !ok {
		return d
	}
	// The pattern was validated in Parse, so the error cannot happen.
	if ok, _ := path.Match(p.pattern, candidate.Tag); !ok {
		return reject("policy %s: candidate tag %q does not match", p.label, candidate.Tag)
	}
	return accept("policy %s: %s", p.label, describeChange(current, candidate))
}

type regexpPolicy struct {
	label string
	re    *regexp.Regexp
}

func parseRegexp(label string) (Policy, error) {
	p := strings.TrimPrefix(label, regexpPrefix)
	if err := checkPattern(label, p); err != nil {
		return nil, err
	}
	// Compile the expression alone first: wrapping an invalid one such as
	// "a)|(b" could turn it into a valid expression that means something else.
	if _, err := regexp.Compile(p); err != nil {
		return nil, fmt.Errorf("slipway.policy %q: invalid regular expression: %w", label, err)
	}
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("slipway.policy %q: invalid regular expression: %w", label, err)
	}
	return regexpPolicy{label: label, re: re}, nil
}

func (p regexpPolicy) String() string { return p.label }

func (p regexpPolicy) Accept(current, candidate Image) Decision {
	if d, ok := precheck(current, candidate); !ok {
		return d
	}
	if !p.re.MatchString(candidate.Tag) {
		return reject("policy %s: candidate tag %q does not match the whole expression", p.label, candidate.Tag)
	}
	return accept("policy %s: %s", p.label, describeChange(current, candidate))
}
