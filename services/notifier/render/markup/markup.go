// Package markup makes text from events literal in each markup a
// notification is written in. Everything in a notify.Message (title, text,
// facts) is plain text, and much of it comes from outside: the actor and
// the repository of a push, the reason of an approval, a platform's error.
// An integration passes every such value through the function of its
// markup where it inserts it, so that "<!channel>", "<https://x|Approve>"
// or "[Approve](https://x)" is shown as typed and never pings a channel or
// becomes a link.
//
// Every function first cleans the text (pkg/platform/plaintext): control
// characters other than line breaks become spaces and bidirectional
// overrides are removed, whatever the markup.
package markup

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-cd/slipway/pkg/platform/plaintext"
	"github.com/slipway-cd/slipway/pkg/platform/slackmsg"
)

// Text is s for plain text that may span lines (an e-mail's text part).
func Text(s string) string { return plaintext.Clean(s) }

// Line is s for plain text on one line, where a line break would start
// something else (a mail header, a "Name: value" line of a list).
func Line(s string) string { return plaintext.Line(s) }

// HTML is s for an HTML text node or quoted attribute value.
func HTML(s string) string { return html.EscapeString(plaintext.Clean(s)) }

// Slack is s for Slack's mrkdwn: a message's top-level text and the mrkdwn
// text objects of its blocks (&, < and > as entities). It is
// slackmsg.Escape, the one escape ingest uses too when it rewrites a
// message.
func Slack(s string) string { return slackmsg.Escape(s) }

// SlackURL is u for the URL part of a mrkdwn link, <url|label>: what would
// end the URL early (|, >) or open another token (<), and spaces, are
// percent-encoded.
func SlackURL(u string) string {
	return strings.NewReplacer("<", "%3C", ">", "%3E", "|", "%7C", " ", "%20").Replace(plaintext.Line(u))
}

// teamsEscaped are the characters that are markup anywhere in the Markdown
// of an Adaptive Card (a CommonMark subset: emphasis, links, and what a
// client's renderer adds, such as autolinks <url> and entities).
const teamsEscaped = "\\*[]`~<>&"

// Teams is s for the Markdown of an Adaptive Card TextBlock or Fact (title
// and value), as Teams renders them. Markup characters are
// backslash-escaped as CommonMark defines: \, *, [, ] (no [label](url)
// link), `, ~, <, > (no <url> autolink, no HTML), & (no entity), _ where it
// could start or end emphasis (not inside a word: my_app stays as it is),
// and, at the start of a line, what would make a heading, a list or a quote
// (#, -, +, =, "1.").
//
// A bare URL is still shown as a link by Teams, but shows where it points;
// no text of an event can give it another label.
func Teams(s string) string {
	s = plaintext.Clean(s)
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for line := range strings.SplitAfterSeq(s, "\n") {
		teamsLine(&b, line)
	}
	return b.String()
}

func teamsLine(b *strings.Builder, line string) {
	rest := strings.TrimLeft(line, " ")
	b.WriteString(line[:len(line)-len(rest)])
	// Block markers: a heading (#), a list item (-, +, "1." or "1)"), a
	// setext underline (=, -). * and > are escaped everywhere anyway.
	if rest != "" && strings.IndexByte("#-+=", rest[0]) >= 0 {
		b.WriteByte('\\')
	} else if n := leadingDigits(rest); n > 0 && n < len(rest) && (rest[n] == '.' || rest[n] == ')') {
		b.WriteString(rest[:n])
		b.WriteByte('\\')
		rest = rest[n:]
	}
	var prev rune
	for i, r := range rest {
		switch {
		case strings.ContainsRune(teamsEscaped, r):
			b.WriteByte('\\')
		case r == '_':
			next, _ := utf8.DecodeRuneInString(rest[i+1:])
			if !isWordChar(prev) || !isWordChar(next) {
				b.WriteByte('\\')
			}
		}
		b.WriteRune(r)
		prev = r
	}
}

func leadingDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func isWordChar(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
