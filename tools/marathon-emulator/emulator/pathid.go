package emulator

import (
	"regexp"
	"strings"
)

// idSegmentPattern is PathId.ID_PATH_SEGMENT_PATTERN (state/PathId.scala)
// as Marathon prints it in validation messages: a segment is a DNS-like
// label, or "." / ".." before canonicalisation.
const idSegmentPattern = `^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$`

// idSegment matches whole segments, as Java's Matcher.matches does.
var idSegment = regexp.MustCompile(`^(?:` + idSegmentPattern[1:len(idSegmentPattern)-1] + `)$`)

// ramlPathID is strings.PathId's pattern in stringTypes.raml, which the
// JSON reader enforces before any other validation.
var ramlPathID = regexp.MustCompile(`^(\/?((\.\.)|(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))?($|\/))+$`)

// reservedLast are the segments an id must not end with (PathId.scala:
// withoutReservedKeywords), because they collide with API sub-resources.
var reservedLast = []string{"restart", "tasks", "versions", ".", ".."}

// segments splits an id into its non-empty segments, unresolved.
func segments(id string) []string {
	var out []string
	for _, s := range strings.Split(id, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// canonical resolves id against base like PathId.canonicalPath: absolute
// ids stand alone, relative ones hang below base, "." and ".." resolve.
func canonical(id, base string) string {
	var parts []string
	if !strings.HasPrefix(id, "/") {
		parts = segments(base)
	}
	for _, s := range segments(id) {
		switch s {
		case ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, s)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// absPath turns a URL path parameter into an absolute id (toAbsolutePath).
func absPath(id string) string { return canonical("/"+strings.Trim(id, "/"), "/") }

// parentOf returns the id of the group that holds id ("/" for top level).
func parentOf(id string) string {
	i := strings.LastIndex(id, "/")
	if i <= 0 {
		return "/"
	}
	return id[:i]
}

// ancestors lists the groups above id, nearest first, ending with "/".
func ancestors(id string) []string {
	var out []string
	for p := parentOf(id); ; p = parentOf(p) {
		out = append(out, p)
		if p == "/" {
			return out
		}
	}
}

// isBelow reports whether id is group or inside it.
func isBelow(id, group string) bool {
	if group == "/" {
		return true
	}
	return id == group || strings.HasPrefix(id, group+"/")
}

// pathViolations checks an id's segments as PathId.pathIdValidator and
// validPathWithBase do; base "" skips the child-of check.
func pathViolations(raw, base string) []string {
	var errs []string
	for _, s := range segments(raw) {
		if !idSegment.MatchString(s) {
			errs = append(errs, "must fully match regular expression '"+idSegmentPattern+"'")
			break
		}
	}
	segs := segments(canonical(raw, orRoot(base)))
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		for _, r := range reservedLast {
			if last == r {
				errs = append(errs, "must not end with any of the following reserved keywords: "+strings.Join(reservedLast, ", "))
				break
			}
		}
	}
	if base != "" && parentOf(canonical(raw, base)) != base {
		errs = append(errs, "Identifier is not child of '"+base+"'")
	}
	return errs
}

func orRoot(s string) string {
	if s == "" {
		return "/"
	}
	return s
}
