package formats

// Checks on the names a push carries (repository, tag, digest, registry
// host) and splitting a full image reference into them. Every parser runs
// what it read through checkImage, so a Push never names something no
// registry would accept.

import (
	"regexp"
	"strings"
)

var (
	// The distribution reference grammar: lowercase path components joined
	// by separators. Anything else is refused by every registry, so a
	// payload that carries it is broken (or forged), not a push to follow.
	repoPathRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)
	tagRE      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hostRE     = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$`)
)

// maxRepoLen is distribution's limit on a repository name.
const maxRepoLen = 255

func validRepository(repo string) bool {
	return len(repo) <= maxRepoLen && repoPathRE.MatchString(repo)
}

// validDigest accepts the digests registries compute; the hex length must
// match the algorithm so a truncated digest never reaches a registry call.
// isLowerHex is a loop, not a regular expression: every push's digest goes
// through it.
func isLowerHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func validDigest(d string) bool {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || !isLowerHex(hex) {
		return false
	}
	switch alg {
	case "sha256":
		return len(hex) == 64
	case "sha384":
		return len(hex) == 96
	case "sha512":
		return len(hex) == 128
	}
	return false
}

// validTag accepts what a parser may put in Push.Tag: nothing (untagged), a
// tag, or a digest standing in for a tag; Normalize sorts those out.
func validTag(tag string) bool {
	return tag == "" || tagRE.MatchString(tag) || validDigest(tag)
}

func validHost(h string) bool { return len(h) <= 255 && hostRE.MatchString(h) }

// validImage reports whether checkImage accepts the parts of a push, for a
// caller that builds the field names of its messages only on an error.
func validImage(repo, tag, digest string) bool {
	return validRepository(repo) && validTag(tag) && (digest == "" || validDigest(digest))
}

// checkImage validates the parts of a push every parser fills, naming the
// payload fields they came from in the error.
func checkImage(format, repoField, repo, tagField, tag, digestField, digest string) error {
	switch {
	case repo == "":
		return malformed("%s: %s is missing", format, repoField)
	case !validRepository(repo):
		return malformed("%s: %s %q is not a valid repository name", format, repoField, repo)
	case !validTag(tag):
		return malformed("%s: %s %q is not a valid tag", format, tagField, tag)
	case digest != "" && !validDigest(digest):
		return malformed("%s: %s %q is not a valid digest", format, digestField, digest)
	}
	return nil
}

// imageRef is a full image reference split into its parts.
type imageRef struct {
	Host, Repository, Tag, Digest string
}

// splitRef splits "host/ns/repo", "host/ns/repo:tag", "host/ns/repo@sha256:…"
// or "host/ns/repo:tag@sha256:…". The host is mandatory: every format that
// sends full references (GHCR, GAR, Harbor) includes it. A trailing bare ":"
// (GHCR's untagged children) yields an empty tag. Nothing is validated here.
func splitRef(ref string) (imageRef, bool) {
	var r imageRef
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		ref, r.Digest = name, digest
	}
	host, path, ok := strings.Cut(ref, "/")
	if !ok || host == "" {
		return r, false
	}
	r.Host = host
	if i := strings.LastIndex(path, ":"); i >= 0 {
		path, r.Tag = path[:i], path[i+1:]
	}
	r.Repository = path
	return r, path != ""
}
