package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
)

// imageRef is an image reference split for display: an operator reads
// repository:tag, glances at the digest's first 12 hex digits, and copies
// the whole reference (Full).
type imageRef struct {
	Full       string `json:"full"`
	Registry   string `json:"registry,omitempty"`
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest,omitempty"`
}

// splitRef splits s as registry/repository[:tag][@digest] for display. It
// changes nothing of s (no default registry or tag) and checks nothing:
// whatever the text, each part is shown escaped.
func splitRef(s string) imageRef {
	r := imageRef{Full: s}
	name := s
	if at := strings.LastIndexByte(name, '@'); at >= 0 {
		name, r.Digest = name[:at], name[at+1:]
	}
	// A ':' after the last '/' starts the tag (one before it is a port).
	if colon := strings.LastIndexByte(name, ':'); colon > strings.LastIndexByte(name, '/') {
		name, r.Tag = name[:colon], name[colon+1:]
	}
	// The first segment is a registry when it looks like a host, as
	// Docker reads it.
	if host, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		r.Registry, name = host, rest
	}
	r.Repository = name
	return r
}

// refOf is what the templates' ref is given: a reference as text, an
// events.ImageRef, or one already split.
func refOf(v any) imageRef {
	switch x := v.(type) {
	case imageRef:
		return x
	case *imageRef:
		if x != nil {
			return *x
		}
	case events.ImageRef:
		return imageRef{Full: x.String(), Registry: x.Registry, Repository: x.Repository, Tag: x.Tag, Digest: x.Digest}
	case string:
		return splitRef(x)
	case fmt.Stringer:
		return splitRef(x.String())
	}
	return imageRef{}
}

// ref renders an image reference compactly: the registry muted, then
// repository:tag, the short digest (a link to the image's page), the whole
// reference in the title and a copy button (shown by the script). Every
// part is escaped on its own: the reference comes from events and
// platforms, never trusted as markup.
func ref(v any) template.HTML { return renderRef(refOf(v), true) }

// refName is ref without the short digest, for a row that shows the
// digest in a column of its own; the title and the copy keep it.
func refName(v any) template.HTML { return renderRef(refOf(v), false) }

func renderRef(r imageRef, digest bool) template.HTML {
	if r.Full == "" {
		return "-"
	}
	esc := template.HTMLEscapeString
	// A long reference may break after a slash, not inside a name.
	path := func(s string) string { return strings.ReplaceAll(esc(s), "/", "/<wbr>") }
	var b strings.Builder
	b.WriteString(`<span class="ref" title="` + esc(r.Full) + `">`)
	if r.Registry != "" {
		b.WriteString(`<span class="registry">` + esc(r.Registry) + `/<wbr></span>`)
	}
	b.WriteString(`<span class="repo">` + path(r.Repository) + `</span>`)
	if r.Tag != "" {
		b.WriteString(`<span class="tag">:` + esc(r.Tag) + `</span>`)
	}
	if digest && r.Digest != "" {
		short := `<code class="digest">` + esc(shortDigest(r.Digest)) + `</code>`
		if validDigest(r.Digest) {
			short = `<a href="/images/` + r.Digest + `">` + short + `</a>`
		}
		b.WriteString(" " + short)
	}
	b.WriteString(`<button type="button" class="copy" data-copy="` + esc(r.Full) + `" aria-label="copy the image reference">copy</button></span>`)
	return template.HTML(b.String())
}

// at renders a time as a <time>: short (the time of day when it is today,
// else the date and minute, UTC), the full UTC time in its title, the
// RFC 3339 form for machines. "-" for none.
func at(t time.Time) template.HTML {
	if t.IsZero() {
		return "-"
	}
	t = t.UTC()
	short := t.Format("2006-01-02 15:04")
	if y, m, d := time.Now().UTC().Date(); t.Year() == y && t.Month() == m && t.Day() == d {
		short = t.Format("15:04:05")
	}
	// Only digits, dashes, colons and letters of the layouts: nothing to
	// escape.
	return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `" title="` + t.Format("2006-01-02 15:04:05 UTC") + `">` + short + `</time>`)
}

// shortID is an event's or approval's id as the tables show it: its first
// 8 characters (a UUID's first group), the whole in a title.
func shortID(id string) template.HTML {
	esc := template.HTMLEscapeString(id)
	r := []rune(id)
	if len(r) <= 8 {
		return template.HTML(`<span class="id">` + esc + `</span>`)
	}
	return template.HTML(`<span class="id" title="` + esc + `">` + template.HTMLEscapeString(string(r[:8])) + `…</span>`)
}
