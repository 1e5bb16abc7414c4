// Package plaintext cleans text that came from outside (webhook payloads,
// error messages of platforms, reasons people typed) before it is stored or
// shown: valid UTF-8, no control characters but line breaks, no invisible
// characters that reorder what a reader sees. Escaping for a markup comes
// after this: the notifier's markup package (Slack, Teams, HTML), and
// slackmsg for the Slack text ingest writes too.
package plaintext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean returns s as valid UTF-8 (invalid bytes become U+FFFD) whose only
// control character is the line feed: CR LF, CR, NEL, U+2028 and U+2029
// become "\n"; every other control character (C0, DEL, C1: escape
// sequences, NUL, tab) becomes a space, so that it neither acts on a
// terminal nor glues words together; the Unicode bidirectional formatting
// characters are removed, as they make text read in another order than it
// is stored ("Trojan Source", CVE-2021-42574).
func Clean(s string) string {
	if isClean(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				continue // the \n follows
			}
			b.WriteByte('\n')
		case r == '\n', r == '\u0085', r == '\u2028', r == '\u2029':
			b.WriteByte('\n')
		case unicode.IsControl(r):
			b.WriteByte(' ')
		case isBidi(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Line is Clean on one line: line breaks become spaces.
func Line(s string) string {
	return strings.ReplaceAll(Clean(s), "\n", " ")
}

// Bound cuts s to at most n characters (runes), the last one "…" when it
// was cut.
func Bound(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// isClean reports whether Clean would return s unchanged: the common case,
// checked without allocating.
func isClean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || (r != '\n' && unicode.IsControl(r)) || r == '\u2028' || r == '\u2029' || isBidi(r) {
			return false
		}
	}
	return true
}

// isBidi reports the Unicode bidirectional formatting characters: the
// marks (ALM, LRM, RLM), embeddings and overrides (LRE … RLO) and isolates
// (LRI … PDI).
func isBidi(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e':
		return true
	case r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}
