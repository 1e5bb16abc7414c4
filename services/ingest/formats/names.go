package formats

// Checks on the names a push carries (repository, tag, digest, registry
// host) and splitting a full image reference into them. Every parser runs
// what it read through checkImage, so a Push never names something no
// registry would accept.

import (
	"strings"
)

// The checks are loops over bytes, not regular expressions: every push goes
// through them, and a regular expression cost more than the rest of a
// push's checks together. names_test.go holds each to the grammar it
// implements, written as a regular expression.

// maxRepoLen is distribution's limit on a repository name.
const maxRepoLen = 255

// validRepository accepts the distribution reference grammar's path:
// lowercase components joined by "/". Anything else is refused by every
// registry, so a payload that carries it is broken (or forged), not a push
// to follow.
func validRepository(repo string) bool {
	return len(repo) <= maxRepoLen && allParts(repo, "/", validPathComponent)
}

// allParts reports whether every part of s between the separators passes
// valid.
func allParts(s, sep string, valid func(string) bool) bool {
	for {
		part, rest, more := strings.Cut(s, sep)
		if !valid(part) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// validPathComponent accepts runs of lowercase letters and digits joined
// by one separator each: ".", "_", "__", or one or more "-".
func validPathComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && (isDigit(c[i]) || c[i] >= 'a' && c[i] <= 'z') {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

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
	return tag == "" || isTag(tag) || validDigest(tag)
}

// isTag accepts a tag as registries do: up to 128 letters, digits, "_",
// "." and "-", not starting with "." or "-".
func isTag(tag string) bool {
	if tag == "" || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validHost accepts a DNS name or IPv4 address, with an optional port of
// up to five digits.
func validHost(h string) bool {
	if len(h) > 255 {
		return false
	}
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort && (port == "" || len(port) > 5 || !allDigits(port)) {
		return false
	}
	return allParts(name, ".", validLabel)
}

// validLabel accepts letters, digits and "-", not first or last.
func validLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if !isAlnum(l[i]) && l[i] != '-' {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

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
